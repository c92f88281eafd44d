"""The bounce: a delivery status notification to the sender (RFC 3464, RFC 3461 §6).

Sent from the null reverse-path (RFC 5321 §4.5.5) so it can never bounce back, marked
``Auto-Submitted: auto-replied`` (RFC 3834), with one human-readable part, the
machine-readable ``message/delivery-status`` part and the original's header section.
"""

from __future__ import annotations

import re
from email.utils import formatdate, make_msgid

from smtp.spool import QueuedMessage, RecipientState

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
# Enough of the original to recognise it, never the whole body back to the sender.
MAX_RETURNED_HEADER = 64 * 1024


def status_of(reply: str | None) -> str:
    """The RFC 3463 status code in a reply, else the class of its code."""
    if reply:
        found = _STATUS.search(reply)
        if found and found.group(1) == "5":
            return ".".join(found.groups())
    return "5.0.0"


def build_bounce(
    message: QueuedMessage, original: bytes, *, hostname: str, failed: list[RecipientState]
) -> bytes:
    env = message.envelope
    boundary = f"=_bounce_{env.id}"
    header_end = original.find(b"\r\n\r\n")
    headers = original[: header_end + 2 if header_end >= 0 else len(original)]
    headers = headers[:MAX_RETURNED_HEADER]
    human = [
        f"This is the mail system at {hostname}.",
        "",
        "Your message could not be delivered to one or more recipients.",
        "It has been returned below (headers only).",
        "",
    ]
    for rcpt in failed:
        human.append(f"<{rcpt.address}>: {rcpt.last_reply or 'undeliverable'}")
    per_message = [
        f"Reporting-MTA: dns; {hostname}",
        f"X-Gateway-Queue-ID: {env.id}",
        f"Arrival-Date: {formatdate(env.arrived_at)}",
    ]
    per_recipient: list[str] = []
    for rcpt in failed:
        per_recipient += [
            "",
            f"Final-Recipient: rfc822; {rcpt.address}",
            "Action: failed",
            f"Status: {status_of(rcpt.last_reply)}",
            f"Diagnostic-Code: smtp; {_one_line(rcpt.last_reply or 'undeliverable')}",
        ]
        if rcpt.finished_at:
            per_recipient.append(f"Last-Attempt-Date: {formatdate(rcpt.finished_at)}")
    lines = [
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>",
        f"To: <{env.sender}>",
        "Subject: Undelivered Mail Returned to Sender",
        f"Date: {formatdate()}",
        f"Message-ID: {make_msgid(domain=hostname)}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        "This is a MIME-encapsulated message.",
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        *human,
        "",
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "",
        *per_message,
        *per_recipient,
        "",
        f"--{boundary}",
        "Content-Type: text/rfc822-headers",
        "",
    ]
    tail = ["", f"--{boundary}--", ""]
    return (
        "\r\n".join(lines).encode("utf-8") + b"\r\n" + headers + "\r\n".join(tail).encode()
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())[:900]
