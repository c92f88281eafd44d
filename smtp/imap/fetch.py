"""FETCH responses rendered straight from the stored bytes, many messages per loop turn.

Twisted's FETCH writes each message through its cooperative scheduler, a few loop turns
per message; for the items mail clients ask for when they sync (UID, FLAGS, sizes, dates,
header fields, whole bodies) this module renders the responses itself, ``BATCH`` messages
at a time. Anything else (ENVELOPE, BODYSTRUCTURE, MIME parts) goes Twisted's way.
"""

from __future__ import annotations

import time
from typing import Any

from smtp.imap.message import MaildirMessage, select_fields

# Messages rendered per loop turn: big enough to amortise the turn, small enough that
# other sessions get the loop every few milliseconds.
BATCH = 200
_SIMPLE = {"uid", "flags", "rfc822size", "internaldate", "rfc822", "rfc822header",
           "rfc822text"}


def renderable(query: list[Any]) -> bool:
    for part in query:
        if part.type in _SIMPLE:
            continue
        if part.type == "body" and not part.part and not part.mime and (
            part.header or part.text or part.empty
        ):
            continue
        return False
    return True


def sets_seen(query: list[Any]) -> bool:
    """RFC 3501 §6.4.5: BODY[...] without .PEEK, RFC822 and RFC822.TEXT set ``\\Seen``."""
    for part in query:
        if part.type == "body" and not part.peek and (
            part.header or part.text or part.empty or part.mime or part.part
        ):
            return True
        if part.type in ("rfc822", "rfc822text"):
            return True
    return False


def literal(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


def internal_date(msg: MaildirMessage) -> bytes:
    stamp = time.gmtime(msg.folder.internal_date(msg.entry))
    return time.strftime('"%d-%b-%Y %H:%M:%S +0000"', stamp).encode()


def plan(query: list[Any], uid: bool) -> list[tuple[Any, ...]]:
    """The query compiled once per FETCH: each item's kind and its ready-made label."""
    steps: list[tuple[Any, ...]] = []
    for part in query:
        if part.type != "body":
            steps.append((part.type,))
            continue
        origin = b"<%d>" % part.partialBegin if part.partialBegin is not None else b""
        partial = (part.partialBegin, part.partialLength) if origin else None
        if part.header:
            fields = [f.decode("ascii", "replace") if isinstance(f, bytes) else f
                      for f in part.header.fields or ()]
            label = b"BODY[" + bytes(part.header) + b"]" + origin + b" "
            steps.append(("header", label, fields, bool(part.header.negate), partial))
        elif part.text:
            steps.append(("text", b"BODY[TEXT]" + origin + b" ", partial))
        else:
            steps.append(("all", b"BODY[]" + origin + b" ", partial))
    if uid and not any(p.type == "uid" for p in query):
        steps.append(("uid",))
    return steps


def _cut(data: bytes, partial: tuple[int, int] | None) -> bytes:
    return data if partial is None else data[partial[0]: partial[0] + partial[1]]


def render(seq: int, msg: MaildirMessage, steps: list[tuple[Any, ...]]) -> bytes:
    """One ``* n FETCH (...)`` line; labels follow RFC 3501 §7.4.2 (only the origin of a
    partial range is echoed)."""
    items: list[bytes] = []
    for step in steps:
        kind = step[0]
        if kind == "uid":
            items.append(b"UID %d" % msg.getUID())
        elif kind == "flags":
            items.append(b"FLAGS (" + " ".join(msg.getFlags()).encode() + b")")
        elif kind == "rfc822size":
            items.append(b"RFC822.SIZE %d" % msg.getSize())
        elif kind == "internaldate":
            items.append(b"INTERNALDATE " + internal_date(msg))
        elif kind == "rfc822":
            items.append(b"RFC822 " + literal(msg.data()))
        elif kind == "rfc822header":
            items.append(b"RFC822.HEADER " + literal(msg.header()))
        elif kind == "rfc822text":
            items.append(b"RFC822.TEXT " + literal(msg.body()))
        elif kind == "header":
            _, label, fields, negate, partial = step
            data = select_fields(msg.header(), fields, negate) if fields else msg.header()
            items.append(label + literal(_cut(data, partial)))
        elif kind == "text":
            items.append(step[1] + literal(_cut(msg.body(), step[2])))
        else:
            items.append(step[1] + literal(_cut(msg.data(), step[2])))
    return b"* %d FETCH (" % seq + b" ".join(items) + b")\r\n"
