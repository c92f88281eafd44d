"""The one table from refusal types to SMTP replies (RFC 5321 codes, RFC 3463 status codes).

Temporary failures (4xx) tell the client to keep the message and retry; permanent ones (5xx)
say what to change. Anything not in the table is a bug: logged by the handler with its
traceback and answered 451 4.3.0, never 250.
"""

from __future__ import annotations

from smtp.errors import (
    BadRecipient,
    HeaderSenderNotAllowed,
    HeaderTooBig,
    MalformedMessage,
    NotAuthenticated,
    OutboundDisabled,
    SenderNotAllowed,
    SpoolFailed,
    SpoolFull,
    SubmissionRefused,
    TooManyRecipients,
)

ANSWERS: dict[type[SubmissionRefused], str] = {
    # RFC 4954 §6: authentication required.
    NotAuthenticated: "530 5.7.0",
    # RFC 3463 5.7.1: delivery not authorized (Postfix answers 553 for a sender mismatch).
    SenderNotAllowed: "553 5.7.1",
    HeaderSenderNotAllowed: "550 5.7.1",
    OutboundDisabled: "550 5.7.1",
    # RFC 3463 5.1.3: bad destination mailbox address syntax.
    BadRecipient: "553 5.1.3",
    # RFC 5321 §4.5.3.1.10: 452 for too many recipients; RFC 3463 4.5.3.
    TooManyRecipients: "452 4.5.3",
    # RFC 3463 5.3.4: message too big for system.
    HeaderTooBig: "552 5.3.4",
    # RFC 3463 5.6.0: other or undefined media error.
    MalformedMessage: "550 5.6.0",
    # RFC 3463 4.3.1: mail system full.
    SpoolFull: "452 4.3.1",
    SpoolFailed: "451 4.3.0",
}

LOCAL_ERROR = "451 4.3.0 Local error in processing, try again later"


def answer(error: SubmissionRefused) -> str:
    for kind in type(error).__mro__:
        code = ANSWERS.get(kind)
        if code is not None:
            return f"{code} {_one_line(error.reason)}"
    return LOCAL_ERROR


def _one_line(text: str) -> str:
    """A reply is one line: no CR/LF from a reason can start a second one."""
    return " ".join(text.split())[:400]
