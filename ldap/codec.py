"""Requests off the wire: framing with a size limit, a structural check, then ldaptor.

ldaptor's decoder trusts its input (asserts, recursion as deep as the client nests, a
``print`` for unknown tags) and needs the whole PDU in memory. So the envelope is read here
first: the length is checked against ``max_pdu_bytes`` before the body is buffered, every
TLV must nest exactly and no deeper than the filter limit allows, and only a well-formed
frame goes to ldaptor. Whatever still fails there is a ``MalformedRequest``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ldaptor.protocols import pureber, pureldap

from ldap.errors import AdminLimitExceeded, MalformedRequest
from ldap.search_decoder import read_search
from ldap.tlv import children, header
from ldap.wire import Op

log = logging.getLogger(__name__)

# ldaptor prints "BERDecoderContext has no tag ..." to stdout for an unknown tag and goes
# on; the frame check below already refuses what matters, so the line goes to debug logs.
pureber.print = lambda *args, **kwargs: log.debug("ldaptor: %s", " ".join(map(str, args)))  # type: ignore[attr-defined]

_DECODER = pureldap.LDAPBERDecoderContext_TopLevel(
    inherit=pureldap.LDAPBERDecoderContext_LDAPMessage(
        fallback=pureldap.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext()),
        inherit=pureldap.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext()),
    )
)

REQUEST_OPS = frozenset(
    {
        Op.BIND_REQUEST,
        Op.UNBIND_REQUEST,
        Op.SEARCH_REQUEST,
        Op.MODIFY_REQUEST,
        Op.ADD_REQUEST,
        Op.DELETE_REQUEST,
        Op.MODIFY_DN_REQUEST,
        Op.COMPARE_REQUEST,
        Op.ABANDON_REQUEST,
        Op.EXTENDED_REQUEST,
    }
)

# TLV levels above a search filter: LDAPMessage, SearchRequest. A filter of depth N adds N.
_ENVELOPE_DEPTH = 2


@dataclass(frozen=True)
class Control:
    oid: str
    critical: bool
    value: bytes | None


@dataclass(frozen=True)
class SimpleBind:
    """A simple bind read without ldaptor: the same fields as its LDAPBindRequest."""

    version: int
    dn: bytes
    auth: bytes = field(repr=False)
    sasl: bool = False


UNBIND = pureldap.LDAPUnbindRequest()


@dataclass(frozen=True)
class Request:
    message_id: int
    op: int
    body: Any  # the ldaptor request object
    controls: tuple[Control, ...]


class RequestDecoder:
    """Feed bytes in, take complete requests out; keeps at most one partial PDU."""

    def __init__(self, *, max_pdu_bytes: int, max_filter_depth: int) -> None:
        self.max_pdu_bytes = max_pdu_bytes
        self.max_depth = max_filter_depth + _ENVELOPE_DEPTH
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > self.max_pdu_bytes:
            # Checked again per frame below; this bounds a header that never completes.
            head = header(self._buffer, 0, len(self._buffer))
            if head is None or head[1] + head[2] > self.max_pdu_bytes:
                raise MalformedRequest(f"request larger than {self.max_pdu_bytes} bytes")

    def next_request(self) -> Request | None:
        """The next complete request, or None until more bytes come."""
        buf = self._buffer
        if not buf:
            return None
        if buf[0] != 0x30:
            raise MalformedRequest("not an LDAPMessage (expected a SEQUENCE)")
        head = header(buf, 0, len(buf))
        if head is None:
            return None
        _tag, start, size = head
        if start + size > self.max_pdu_bytes:
            raise MalformedRequest(f"request larger than {self.max_pdu_bytes} bytes")
        if len(buf) < start + size:
            return None
        frame = bytes(buf[: start + size])
        del buf[: start + size]
        return decode_frame(frame, self.max_depth)


def _envelope(frame: bytes) -> tuple[int | None, int | None]:
    """Message id and op tag, read leniently for answering a request that fails later."""
    try:
        head = header(frame, 0, len(frame))
        if head is None:
            return None, None
        _, start, _size = head
        id_head = header(frame, start, len(frame))
        if id_head is None or id_head[0] != 0x02 or not 1 <= id_head[2] <= 4:
            return None, None
        message_id = int.from_bytes(frame[id_head[1] : id_head[1] + id_head[2]], "big")
        op_pos = id_head[1] + id_head[2]
        if op_pos >= len(frame):
            return message_id, None
        tag = frame[op_pos]
        return message_id, (tag & 0x1F if tag & 0xC0 == 0x40 else None)
    except MalformedRequest:
        return None, None


def _check_structure(frame: bytes, max_depth: int) -> None:
    """Every constructed TLV's content is an exact run of TLVs, no deeper than allowed."""
    stack: list[int] = [len(frame)]
    pos = 0
    while stack:
        end = stack[-1]
        if pos == end:
            stack.pop()
            continue
        head = header(frame, pos, end)
        if head is None:
            raise MalformedRequest("truncated element")
        tag, start, size = head
        if start + size > end:
            raise MalformedRequest("element longer than its container")
        if tag & 0x20:
            if len(stack) > max_depth:
                raise MalformedRequest("nested too deep", error=AdminLimitExceeded(
                    "search filter nested too deep"
                ))
            stack.append(start + size)
            pos = start
        else:
            pos = start + size


def decode_frame(frame: bytes, max_depth: int) -> Request:
    message_id, op = _envelope(frame)
    try:
        _check_structure(frame, max_depth)
    except MalformedRequest as exc:
        raise MalformedRequest(
            exc.reason, message_id=message_id, op=op, error=exc.error
        ) from None
    if message_id is None:
        raise MalformedRequest("no message id")
    if op is None or op not in REQUEST_OPS:
        raise MalformedRequest("not a request", message_id=message_id)
    fast = _fast_path(frame, message_id, op)
    if fast is not None:
        return fast
    try:
        message, used = pureber.berDecodeObject(_DECODER, frame)
        if message is None or used != len(frame):
            raise ValueError("trailing bytes")
        body = message.value
        controls = tuple(
            Control(
                oid=_text(oid),
                critical=bool(critical),
                value=value,
            )
            for oid, critical, value in (message.controls or ())
        )
    except Exception as exc:  # ldaptor signals bad input with asserts, IndexError, …
        raise MalformedRequest(
            f"undecodable request ({type(exc).__name__})", message_id=message_id, op=op
        ) from None
    if not isinstance(body, pureldap.LDAPProtocolRequest):
        raise MalformedRequest("not a request", message_id=message_id)
    return Request(message_id=int(message.id), op=op, body=body, controls=controls)


def _fast_path(frame: bytes, message_id: int, op: int) -> Request | None:
    """Unbind, simple bind and search without controls, read directly.

    They are most of what a bind-per-login client sends (connect, bind, search, unbind),
    and ldaptor's generic decoder costs more than the rest of their handling together. The
    frame's structure is already checked; anything unexpected falls back to ldaptor.
    ``tests/test_fuzz.py`` holds this to ldaptor's reading.
    """
    head = header(frame, 0, len(frame))
    assert head is not None
    _, start, _size = head
    id_head = header(frame, start, len(frame))
    assert id_head is not None
    op_pos = id_head[1] + id_head[2]
    op_head = header(frame, op_pos, len(frame))
    if op_head is None or op_head[1] + op_head[2] != len(frame):
        return None  # controls follow the op: ldaptor reads them
    tag, body, length = op_head
    if op == Op.UNBIND_REQUEST and tag == 0x42 and length == 0:
        return Request(message_id=message_id, op=op, body=UNBIND, controls=())
    if op == Op.SEARCH_REQUEST and tag == 0x63:
        search = read_search(frame, body, body + length)
        if search is None:
            return None
        return Request(message_id=message_id, op=op, body=search, controls=())
    if op != Op.BIND_REQUEST or tag != 0x60:
        return None
    parts = children(frame, body, body + length)
    if parts is None or [part[0] for part in parts] != [0x02, 0x04, 0x80]:
        return None  # SASL, or something odd: ldaptor decides
    version = int.from_bytes(frame[parts[0][1]:parts[0][1] + parts[0][2]], "big", signed=True)
    dn = frame[parts[1][1]:parts[1][1] + parts[1][2]]
    auth = frame[parts[2][1]:parts[2][1] + parts[2][2]]
    return Request(message_id=message_id, op=op, body=SimpleBind(version, dn, auth),
                   controls=())


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
