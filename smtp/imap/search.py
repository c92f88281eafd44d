"""SEARCH (RFC 3501 §6.4.4), evaluated by us: Twisted's own header keys fail on Python 3
(``must be str, not bytes``, machine-notes §3), so the mailbox offers ``ISearchableMailbox``.

``parse`` turns Twisted's token list (``parseNestedParens``) into a small tree and refuses
what it does not understand (``IllegalQueryError`` → BAD); ``matches`` evaluates the tree
for one message, reading the file only for keys that need headers or text. Strings match
case-insensitively as substrings of the decoded (RFC 2047) header values, as RFC 3501 asks.
"""

from __future__ import annotations

import datetime
import email.header
import email.utils
from dataclasses import dataclass
from typing import Any

from twisted.mail.imap4 import IllegalQueryError, MessageSet, parseIdList

from smtp.imap.message import MaildirMessage, header_fields, unfold

# Bound recursion: a client can nest NOT/OR/parentheses, not exhaust our stack.
MAX_DEPTH = 50

_FLAG_KEYS = {
    b"ANSWERED": ("\\Answered", True), b"UNANSWERED": ("\\Answered", False),
    b"DELETED": ("\\Deleted", True), b"UNDELETED": ("\\Deleted", False),
    b"DRAFT": ("\\Draft", True), b"UNDRAFT": ("\\Draft", False),
    b"FLAGGED": ("\\Flagged", True), b"UNFLAGGED": ("\\Flagged", False),
    b"SEEN": ("\\Seen", True), b"UNSEEN": ("\\Seen", False),
}
_HEADER_KEYS = {b"BCC": "bcc", b"CC": "cc", b"FROM": "from", b"SUBJECT": "subject", b"TO": "to"}
_DATE_KEYS = {
    b"BEFORE": ("internal", "before"), b"ON": ("internal", "on"),
    b"SINCE": ("internal", "since"), b"SENTBEFORE": ("sent", "before"),
    b"SENTON": ("sent", "on"), b"SENTSINCE": ("sent", "since"),
}
_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}

Node = tuple[Any, ...]


@dataclass
class Candidate:
    seq: int
    message: MaildirMessage
    last_seq: int
    last_uid: int


def parse(tokens: list[Any]) -> Node:
    nodes: list[Node] = []
    rest = list(tokens)
    while rest:
        node, rest = _one(rest, 0)
        nodes.append(node)
    if not nodes:
        raise IllegalQueryError("empty search")
    return ("and", tuple(nodes))


def _one(tokens: list[Any], depth: int) -> tuple[Node, list[Any]]:
    if depth > MAX_DEPTH:
        raise IllegalQueryError("search nested too deeply")
    if not tokens:
        raise IllegalQueryError("search key missing")
    head, rest = tokens[0], tokens[1:]
    if isinstance(head, list):
        inner: list[Node] = []
        while head:
            node, head = _one(head, depth + 1)
            inner.append(node)
        return ("and", tuple(inner)), rest
    if not isinstance(head, bytes):
        raise IllegalQueryError("bad search key")
    key = head.upper()
    if key == b"ALL":
        return ("all",), rest
    if key in _FLAG_KEYS:
        flag, present = _FLAG_KEYS[key]
        return ("flag", flag, present), rest
    if key in (b"NEW", b"OLD", b"RECENT"):
        return (key.decode().lower(),), rest
    if key in (b"KEYWORD", b"UNKEYWORD"):
        _arg(rest, key)
        # No keywords are stored: KEYWORD never matches, UNKEYWORD always does.
        return (("none",) if key == b"KEYWORD" else ("all",)), rest[1:]
    if key in _HEADER_KEYS:
        return ("header", _HEADER_KEYS[key], _text(_arg(rest, key))), rest[1:]
    if key == b"HEADER":
        name = _text(_arg(rest, key)).lower()
        return ("header", name, _text(_arg(rest[1:], key))), rest[2:]
    if key in (b"BODY", b"TEXT"):
        return (key.decode().lower(), _text(_arg(rest, key))), rest[1:]
    if key in (b"LARGER", b"SMALLER"):
        value = _arg(rest, key)
        if not value.isdigit() or len(value) > 12:
            raise IllegalQueryError(f"{key.decode()} needs a number")
        return ("size", key == b"LARGER", int(value)), rest[1:]
    if key in _DATE_KEYS:
        which, op = _DATE_KEYS[key]
        return ("date", which, op, _date(_arg(rest, key))), rest[1:]
    if key == b"UID":
        return ("uid", _set(_arg(rest, key))), rest[1:]
    if key == b"NOT":
        node, rest = _one(rest, depth + 1)
        return ("not", node), rest
    if key == b"OR":
        left, rest = _one(rest, depth + 1)
        right, rest = _one(rest, depth + 1)
        return ("or", left, right), rest
    if key[:1].isdigit() or key[:1] == b"*":
        return ("seq", _set(key)), rest
    raise IllegalQueryError(f"unknown search key {key[:30]!r}")


def _arg(rest: list[Any], key: bytes) -> bytes:
    if not rest or not isinstance(rest[0], bytes):
        raise IllegalQueryError(f"{key.decode()} needs an argument")
    value: bytes = rest[0]
    return value


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace").casefold()


def _set(value: bytes) -> MessageSet:
    try:
        found: MessageSet = parseIdList(value)
        return found
    except Exception as exc:
        raise IllegalQueryError(f"bad message set {value[:30]!r}") from exc


def _date(value: bytes) -> datetime.date:
    parts = value.decode("ascii", "replace").split("-")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
        raise IllegalQueryError("dates look like 1-Feb-2024")
    month = _MONTHS.get(parts[1].lower())
    if month is None:
        raise IllegalQueryError("dates look like 1-Feb-2024")
    try:
        return datetime.date(int(parts[2]), month, int(parts[0]))
    except ValueError as exc:
        raise IllegalQueryError("no such date") from exc


def matches(node: Node, c: Candidate) -> bool:
    kind = node[0]
    if kind == "and":
        return all(matches(n, c) for n in node[1])
    if kind == "all":
        return True
    if kind == "none":
        return False
    if kind == "flag":
        return bool((node[1] in c.message.getFlags()) == node[2])
    if kind == "recent":
        return c.message.recent
    if kind == "new":
        return bool(c.message.recent and "\\Seen" not in c.message.getFlags())
    if kind == "old":
        return not c.message.recent
    if kind == "not":
        return not matches(node[1], c)
    if kind == "or":
        return matches(node[1], c) or matches(node[2], c)
    if kind == "uid":
        return _in(node[1], c.message.getUID(), c.last_uid)
    if kind == "seq":
        return _in(node[1], c.seq, c.last_seq)
    if kind == "size":
        size = c.message.getSize()
        return bool(size > node[2] if node[1] else size < node[2])
    if kind == "header":
        return _header_has(c.message, node[1], node[2])
    if kind == "body":
        return bool(node[1] in _decoded(c.message.body()))
    if kind == "text":
        return bool(node[1] in _decoded(c.message.data()))
    if kind == "date":
        return _date_matches(c.message, node[1], node[2], node[3])
    raise IllegalQueryError(f"unknown search node {kind}")


def _in(ids: MessageSet, value: int, last: int) -> bool:
    for low, high in ids.ranges:
        low = last if low is None else low
        high = last if high is None else high
        if min(low, high) <= value <= max(low, high):
            return True
    return False


def _decoded(data: bytes) -> str:
    return data.decode("utf-8", "replace").casefold()


def _header_has(message: MaildirMessage, name: str, needle: str) -> bool:
    for field, raw in header_fields(message.header()):
        if field != name:
            continue
        if not needle:
            return True  # RFC 3501: HEADER with an empty string matches any such field
        if needle in decode_words(unfold(raw)).casefold():
            return True
    return False


def decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded; an undecodable value is matched as written."""
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value


def _date_matches(message: MaildirMessage, which: str, op: str, day: datetime.date) -> bool:
    if which == "internal":
        stamp = message.folder.internal_date(message.entry)
        found = datetime.datetime.fromtimestamp(stamp, datetime.UTC).date()
    else:
        value = message.getHeaders(False, "date").get("date")
        parsed = email.utils.parsedate_tz(value) if value else None
        if parsed is None:
            return False
        found = datetime.date(parsed[0], parsed[1], parsed[2])
    if op == "before":
        return found < day
    if op == "on":
        return found == day
    return found >= day
