"""BER's tag-length-value framing, as LDAP uses it (RFC 4511 section 5.1): one-byte tags,
definite lengths only, a length-of-length of at most four bytes."""

from __future__ import annotations

from ldap.errors import MalformedRequest

# Longest length-of-length accepted: 4 bytes already says 4 GiB.
_MAX_LENGTH_OCTETS = 4

Part = tuple[int, int, int]
"""(tag, content start, content length) of one TLV."""


def header(buf: bytes | bytearray, pos: int, end: int) -> Part | None:
    """(tag, content start, content length) of the TLV at ``pos``; None if incomplete."""
    if end - pos < 2:
        return None
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise MalformedRequest("multi-byte tags are not used by LDAP")
    first = buf[pos + 1]
    if first < 0x80:
        return tag, pos + 2, first
    count = first & 0x7F
    if count == 0:
        raise MalformedRequest("indefinite lengths are not allowed (RFC 4511 section 5.1)")
    if count > _MAX_LENGTH_OCTETS:
        raise MalformedRequest("length field too long")
    if end - pos < 2 + count:
        return None
    size = int.from_bytes(buf[pos + 2 : pos + 2 + count], "big")
    return tag, pos + 2 + count, size


def children(frame: bytes, start: int, end: int) -> list[Part] | None:
    """The TLVs that make up ``frame[start:end]``, or None if the last one is cut short."""
    parts = []
    pos = start
    while pos < end:
        part = header(frame, pos, end)
        if part is None:
            return None
        parts.append(part)
        pos = part[1] + part[2]
    return parts
