"""A search request read without ldaptor's generic decoder.

Searches are what apps send most after binds, and ldaptor's decoder (a context lookup, a
class and an object per TLV, assertions) costs more than evaluating a search against the
in-memory index. This reads the common shapes directly and builds the same ldaptor objects
its decoder would (``tests/ldap/test_fuzz.py`` holds it to that); whatever it does not
recognise, it leaves to ldaptor by answering None, so it never decides that a request is
malformed. The frame's structure (exact nesting, depth) is already checked by the caller.
"""

from __future__ import annotations

from typing import Any

from ldaptor.protocols import pureber, pureldap

from ldap.tlv import Part
from ldap.tlv import children as tlv_children

# The wire tags of the parts of a SearchRequest (RFC 4511 section 4.5.1).
_OCTET_STRING, _ENUMERATED, _INTEGER, _BOOLEAN, _SEQUENCE = 0x04, 0x0A, 0x02, 0x01, 0x30


class _Unrecognised(Exception):
    """A shape this reader leaves to ldaptor."""


def read_search(frame: bytes, start: int, end: int) -> Any | None:
    """The ``LDAPSearchRequest`` whose content is ``frame[start:end]``, or None."""
    try:
        parts = _children(frame, start, end)
        if len(parts) != 8:
            return None
        base, scope, deref, size, time, types, flt, attributes = parts
        return pureldap.LDAPSearchRequest(
            baseObject=_octets(frame, base),
            scope=_number(frame, scope, _ENUMERATED),
            derefAliases=_number(frame, deref, _ENUMERATED),
            sizeLimit=_number(frame, size, _INTEGER),
            timeLimit=_number(frame, time, _INTEGER),
            typesOnly=0xFF if _number(frame, types, _BOOLEAN) else 0,
            filter=_filter(frame, flt),
            attributes=[
                _octets(frame, part)
                for part in _children(frame, *_content(attributes, _SEQUENCE))
            ],
        )
    except _Unrecognised:
        return None


def _children(frame: bytes, start: int, end: int) -> list[Part]:
    parts = tlv_children(frame, start, end)
    if parts is None:
        raise _Unrecognised
    return parts


def _content(part: Part, tag: int) -> tuple[int, int]:
    if part[0] != tag:
        raise _Unrecognised
    return part[1], part[1] + part[2]


def _octets(frame: bytes, part: Part) -> bytes:
    start, end = _content(part, _OCTET_STRING)
    return frame[start:end]


def _number(frame: bytes, part: Part, tag: int) -> int:
    start, end = _content(part, tag)
    if start == end:
        raise _Unrecognised  # ldaptor asserts on an empty integer
    return int.from_bytes(frame[start:end], "big", signed=True)


def _assertion(frame: bytes, part: Part) -> tuple[Any, Any]:
    children = _children(frame, part[1], part[1] + part[2])
    if len(children) != 2:
        raise _Unrecognised
    return (
        pureber.BEROctetString(value=_octets(frame, children[0])),
        pureber.BEROctetString(value=_octets(frame, children[1])),
    )


_ASSERTIONS = {
    0xA3: pureldap.LDAPFilter_equalityMatch,
    0xA5: pureldap.LDAPFilter_greaterOrEqual,
    0xA6: pureldap.LDAPFilter_lessOrEqual,
    0xA8: pureldap.LDAPFilter_approxMatch,
}
_SETS = {0xA0: pureldap.LDAPFilter_and, 0xA1: pureldap.LDAPFilter_or}
_PIECES = {
    0x80: pureldap.LDAPFilter_substrings_initial,
    0x81: pureldap.LDAPFilter_substrings_any,
    0x82: pureldap.LDAPFilter_substrings_final,
}


def _filter(frame: bytes, part: Part) -> Any:
    tag, start, length = part
    end = start + length
    assertion = _ASSERTIONS.get(tag)
    if assertion is not None:
        desc, value = _assertion(frame, part)
        return assertion(attributeDesc=desc, assertionValue=value)
    if tag == 0x87:
        return pureldap.LDAPFilter_present(value=frame[start:end])
    members = _SETS.get(tag)
    if members is not None:
        return members([_filter(frame, p) for p in _children(frame, start, end)])
    if tag == 0xA2:
        inner = _children(frame, start, end)
        if len(inner) != 1:
            raise _Unrecognised
        return pureldap.LDAPFilter_not(_filter(frame, inner[0]))
    if tag == 0xA4:
        children = _children(frame, start, end)
        if len(children) != 2:
            raise _Unrecognised
        pieces = []
        for piece in _children(frame, *_content(children[1], _SEQUENCE)):
            kind = _PIECES.get(piece[0])
            if kind is None:
                raise _Unrecognised
            pieces.append(kind(value=frame[piece[1] : piece[1] + piece[2]]))
        if not pieces:
            raise _Unrecognised  # ldaptor asserts on an empty list
        return pureldap.LDAPFilter_substrings(type=_octets(frame, children[0]), substrings=pieces)
    # Extensible match and anything unknown: ldaptor's reading.
    raise _Unrecognised
