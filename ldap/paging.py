"""Simple paged results (RFC 2696): the control's value, and the searches left open.

Cloudron's cookie was the decimal offset into a list recomputed per page, so a user added
between pages shifted everyone by one. Here the first page snapshots the answer; the cookie
is a random token naming that snapshot on this connection only (opaque: nothing to forge or
guess across connections), and each connection keeps at most ``max_open`` of them.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

from ldaptor.protocols import pureber

from ldap import wire
from ldap.entry import Entry
from ldap.errors import ProtocolError, UnwillingToPerform

_DECODER = pureber.BERDecoderContext()


@dataclass(frozen=True)
class PageRequest:
    size: int
    cookie: bytes


def parse_control(value: bytes | None) -> PageRequest:
    """realSearchControlValue ::= SEQUENCE { size INTEGER, cookie OCTET STRING }."""
    try:
        decoded, used = pureber.berDecodeObject(_DECODER, value or b"")
        if not isinstance(decoded, pureber.BERSequence) or used != len(value or b""):
            raise ValueError("not a sequence")
        size, cookie = decoded.data
        if not isinstance(size, pureber.BERInteger) or not isinstance(
            cookie, pureber.BEROctetString
        ):
            raise ValueError("wrong types")
        return PageRequest(size=max(0, int(size.value)), cookie=bytes(cookie.value))
    except Exception:
        raise ProtocolError("malformed paged results control") from None


def response_control(total: int, cookie: bytes) -> bytes:
    return wire.control(
        "1.2.840.113556.1.4.319", wire.sequence(wire.integer(total), wire.octets(cookie))
    )


@dataclass
class OpenSearch:
    fingerprint: bytes
    entries: list[Entry]
    offset: int = 0
    sent: int = field(default=0)


class PagedSearches:
    """The open paged searches of one connection."""

    def __init__(self, max_open: int) -> None:
        self._max = max_open
        self._open: OrderedDict[bytes, OpenSearch] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    def start(self, fingerprint: bytes, entries: list[Entry]) -> OpenSearch:
        return OpenSearch(fingerprint, entries)

    def resume(self, cookie: bytes, fingerprint: bytes) -> OpenSearch:
        search = self._open.pop(cookie, None)
        if search is None or search.fingerprint != fingerprint:
            # RFC 2696: the cookie belongs to one search, and is good for one next page.
            raise UnwillingToPerform("paged results cookie is invalid or expired")
        return search

    def park(self, search: OpenSearch) -> bytes:
        cookie = secrets.token_bytes(12)
        self._open[cookie] = search
        while len(self._open) > self._max:
            self._open.popitem(last=False)
        return cookie

    def drop(self, cookie: bytes) -> None:
        self._open.pop(cookie, None)
