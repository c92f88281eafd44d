"""Result codes and the BER encoding of what the server sends.

Requests are decoded by ldaptor (``ldap.codec``); answers are encoded here, directly to
bytes: a search answers thousands of entries, and building ldaptor's object tree for each
one costs more than the search itself. ``tests/test_ldap_wire.py`` decodes every shape back
with ldaptor.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence


class ResultCode(enum.IntEnum):
    """RFC 4511 section 4.1.9 (the ones this server answers)."""

    SUCCESS = 0
    OPERATIONS_ERROR = 1
    PROTOCOL_ERROR = 2
    TIME_LIMIT_EXCEEDED = 3
    SIZE_LIMIT_EXCEEDED = 4
    COMPARE_FALSE = 5
    COMPARE_TRUE = 6
    AUTH_METHOD_NOT_SUPPORTED = 7
    ADMIN_LIMIT_EXCEEDED = 11
    UNAVAILABLE_CRITICAL_EXTENSION = 12
    CONFIDENTIALITY_REQUIRED = 13
    NO_SUCH_ATTRIBUTE = 16
    NO_SUCH_OBJECT = 32
    INVALID_DN_SYNTAX = 34
    INVALID_CREDENTIALS = 49
    INSUFFICIENT_ACCESS_RIGHTS = 50
    BUSY = 51
    UNAVAILABLE = 52
    UNWILLING_TO_PERFORM = 53
    OTHER = 80


# Application tags of the protocol operations (RFC 4511 section 4.2 onwards).
class Op(enum.IntEnum):
    BIND_REQUEST = 0
    BIND_RESPONSE = 1
    UNBIND_REQUEST = 2
    SEARCH_REQUEST = 3
    SEARCH_ENTRY = 4
    SEARCH_DONE = 5
    MODIFY_REQUEST = 6
    MODIFY_RESPONSE = 7
    ADD_REQUEST = 8
    ADD_RESPONSE = 9
    DELETE_REQUEST = 10
    DELETE_RESPONSE = 11
    MODIFY_DN_REQUEST = 12
    MODIFY_DN_RESPONSE = 13
    COMPARE_REQUEST = 14
    COMPARE_RESPONSE = 15
    ABANDON_REQUEST = 16
    EXTENDED_REQUEST = 23
    EXTENDED_RESPONSE = 24


# The answer each request gets (abandon and unbind get none).
RESPONSE_OF: dict[int, Op] = {
    Op.BIND_REQUEST: Op.BIND_RESPONSE,
    Op.SEARCH_REQUEST: Op.SEARCH_DONE,
    Op.MODIFY_REQUEST: Op.MODIFY_RESPONSE,
    Op.ADD_REQUEST: Op.ADD_RESPONSE,
    Op.DELETE_REQUEST: Op.DELETE_RESPONSE,
    Op.MODIFY_DN_REQUEST: Op.MODIFY_DN_RESPONSE,
    Op.COMPARE_REQUEST: Op.COMPARE_RESPONSE,
    Op.EXTENDED_REQUEST: Op.EXTENDED_RESPONSE,
}

NOTICE_OF_DISCONNECTION = "1.3.6.1.4.1.1466.20036"

_SEQUENCE = 0x30
_SET = 0x31
_OCTETS = 0x04
_INTEGER = 0x02
_ENUMERATED = 0x0A
_BOOLEAN = 0x01
_APPLICATION = 0x40
_CONSTRUCTED = 0x20
_CONTEXT = 0x80


def length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + length(len(content)) + content


def octets(value: str | bytes, tag: int = _OCTETS) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return bytes((tag,)) + length(len(data)) + data


def integer(value: int, tag: int = _INTEGER) -> bytes:
    size = max(1, (value.bit_length() + 8) // 8)
    return tlv(tag, value.to_bytes(size, "big", signed=True))


def boolean(value: bool) -> bytes:
    return tlv(_BOOLEAN, b"\xff" if value else b"\x00")


def sequence(*parts: bytes) -> bytes:
    return tlv(_SEQUENCE, b"".join(parts))


def attribute(name: str, values: Iterable[str | bytes]) -> bytes:
    """One PartialAttribute: the name and the SET OF its values (empty for typesOnly)."""
    return sequence(octets(name), tlv(_SET, b"".join(octets(v) for v in values)))


def control(oid: str, value: bytes | None = None, critical: bool = False) -> bytes:
    parts = [octets(oid)]
    if critical:
        parts.append(boolean(True))
    if value is not None:
        parts.append(octets(value))
    return sequence(*parts)


def message(message_id: int, op: bytes, controls: Sequence[bytes] = ()) -> bytes:
    """An LDAPMessage around an encoded protocol op, with optional encoded controls."""
    body = integer(message_id) + op
    if controls:
        body += tlv(_CONTEXT | _CONSTRUCTED | 0, b"".join(controls))
    return tlv(_SEQUENCE, body)


def result(
    op: int,
    code: int,
    message_text: str = "",
    matched_dn: str = "",
    extra: bytes = b"",
) -> bytes:
    """An LDAPResult-shaped op (bind, search done, compare, extended…)."""
    content = (
        integer(int(code), _ENUMERATED) + octets(matched_dn) + octets(message_text) + extra
    )
    return tlv(_APPLICATION | _CONSTRUCTED | op, content)


def search_entry(dn: str | bytes, encoded_attributes: Iterable[bytes]) -> bytes:
    """A SearchResultEntry from attributes already encoded with ``attribute``."""
    return tlv(
        _APPLICATION | _CONSTRUCTED | Op.SEARCH_ENTRY,
        octets(dn) + tlv(_SEQUENCE, b"".join(encoded_attributes)),
    )


def extended_response(
    code: int, message_text: str = "", name: str | None = None, value: bytes | None = None
) -> bytes:
    extra = b""
    if name is not None:
        extra += octets(name, _CONTEXT | 10)
    if value is not None:
        extra += octets(value, _CONTEXT | 11)
    return result(Op.EXTENDED_RESPONSE, code, message_text, extra=extra)


def notice_of_disconnection(code: int, message_text: str) -> bytes:
    """RFC 4511 section 4.4.1: unsolicited (message id 0), then the server closes."""
    return message(0, extended_response(code, message_text, name=NOTICE_OF_DISCONNECTION))
