"""The one table from inbound refusals to SMTP replies (RFC 5321 codes, RFC 3463 statuses).

Recipient refusals come at RCPT, so a sending MTA bounces exactly the addresses that failed
and delivers the others; storage trouble is temporary (4xx: the sender keeps the message).
"""

from __future__ import annotations

from smtp.inbound.errors import (
    BadAddress,
    Blocklisted,
    HeaderTooBig,
    InboundRefused,
    MailboxFull,
    MalformedMessage,
    MessageTooBig,
    RelayDenied,
    StorageFailed,
    StorageFull,
    TooManyRecipients,
    UnknownRecipient,
)

ANSWERS: dict[type[InboundRefused], str] = {
    # RFC 5782 §2.1 leaves the reply to the MTA; Postfix: 554 5.7.1 Service unavailable.
    Blocklisted: "554 5.7.1",
    # RFC 3463 5.7.1: delivery not authorized (Postfix: Relay access denied).
    RelayDenied: "550 5.7.1",
    # RFC 3463 5.1.1: bad destination mailbox address.
    UnknownRecipient: "550 5.1.1",
    BadAddress: "553 5.1.3",
    TooManyRecipients: "452 4.5.3",
    # RFC 3463 5.2.2: mailbox full (Dovecot's "Quota exceeded" answer).
    MailboxFull: "552 5.2.2",
    # RFC 1870 §6.2: 552 for a message over the fixed maximum; RFC 3463 5.3.4.
    MessageTooBig: "552 5.3.4",
    HeaderTooBig: "552 5.3.4",
    MalformedMessage: "550 5.6.0",
    # RFC 3463 4.3.1: mail system full.
    StorageFull: "452 4.3.1",
    StorageFailed: "451 4.3.0",
}

LOCAL_ERROR = "451 4.3.0 Local error in processing, try again later"


def answer(error: InboundRefused) -> str:
    for kind in type(error).__mro__:
        code = ANSWERS.get(kind)
        if code is not None:
            return f"{code} {' '.join(error.reason.split())[:400]}"
    return LOCAL_ERROR
