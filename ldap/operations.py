"""Each LDAP operation, from a decoded request to the bytes of its answer.

The protocol (``ldap.protocol``) owns the connection and the order of requests; this module
owns what they mean. Searches come back as an iterator of encoded messages, so a large
answer is written as fast as the client reads it and never built whole in memory (paged
searches excepted: they keep the entries, not the bytes).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from gateway.config.ldap import LdapConfig
from ldap import wire
from ldap.bind import BindHandler
from ldap.caller import CallerResolver, Session
from ldap.codec import Control, Request
from ldap.directory import Directory
from ldap.entries import (
    MANAGE_DSA_IT_OID,
    PAGED_RESULTS_OID,
    PASSWORD_MODIFY_OID,
    STARTTLS_OID,
    WHOAMI_OID,
)
from ldap.errors import (
    AuthMethodNotSupported,
    DirectoryError,
    ProtocolError,
    SizeLimitExceeded,
    TimeLimitExceeded,
    UnavailableCriticalExtension,
    UnwillingToPerform,
)
from ldap.filters import compile_filter
from ldap.paging import PagedSearches, parse_control, response_control
from ldap.results import message_for, result_for
from ldap.selection import AttributeSelection
from ldap.wire import Op, ResultCode

log = logging.getLogger(__name__)

KNOWN_CONTROLS = frozenset({PAGED_RESULTS_OID, MANAGE_DSA_IT_OID})
# How often (in entries) a search looks at the clock for its time limit.
CLOCK_EVERY = 64


def text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def answer(message_id: int, op: int, exc: BaseException) -> bytes:
    """The failure ``exc`` as the response of ``op``, through the one result table."""
    code = result_for(exc)
    if code is None:
        log.error("unexpected failure answering LDAP op %d", op, exc_info=exc)
        code = ResultCode.OTHER
    matched = exc.matched_dn if isinstance(exc, DirectoryError) else ""
    return wire.message(
        message_id, wire.result(wire.RESPONSE_OF[op], code, message_for(exc, code), matched)
    )


def effective_limit(client: int | float, server: int | float) -> float:
    """The smaller of two limits where 0 means none."""
    limits = [x for x in (client, server) if x and x > 0]
    return min(limits) if limits else 0


class Operations:
    def __init__(
        self,
        directory: Directory,
        binds: BindHandler,
        resolver: CallerResolver,
        config: LdapConfig,
        *,
        tls_available: bool,
        clock: Any = time.monotonic,
    ) -> None:
        self.directory = directory
        self.binds = binds
        self.resolver = resolver
        self.config = config
        self.tls_available = tls_available
        self._clock = clock

    def check_controls(self, controls: tuple[Control, ...]) -> None:
        for c in controls:
            if c.critical and c.oid not in KNOWN_CONTROLS:
                raise UnavailableCriticalExtension(f"control {c.oid} is not supported")

    # -- bind --------------------------------------------------------------------------

    async def bind(self, session: Session, request: Request) -> bytes:
        body = request.body
        try:
            self.check_controls(request.controls)
            if body.version != 3:
                raise ProtocolError("only LDAPv3 is supported")
            if body.sasl:
                raise AuthMethodNotSupported("only simple binds are supported")
            await self.binds.bind(session, text(body.dn), text(body.auth))
        except Exception as exc:
            session.reset_login()
            return answer(request.message_id, request.op, exc)
        return wire.message(request.message_id, wire.result(Op.BIND_RESPONSE, ResultCode.SUCCESS))

    # -- search ------------------------------------------------------------------------

    def search(self, session: Session, request: Request) -> Iterator[bytes]:
        mid, body = request.message_id, request.body
        try:
            self.check_controls(request.controls)
            paging = next((c for c in request.controls if c.oid == PAGED_RESULTS_OID), None)
            page = parse_control(paging.value) if paging is not None else None
            caller = self.resolver.resolve(session)
            compiled = compile_filter(body.filter, self.config.max_filter_depth)
            selection = AttributeSelection(body.attributes, types_only=bool(body.typesOnly))
            size_limit = int(effective_limit(body.sizeLimit, self.config.size_limit))
            time_limit = effective_limit(body.timeLimit, self.config.time_limit)
            entries = self.directory.search(body.baseObject, int(body.scope), compiled, caller)
        except Exception as exc:
            yield answer(mid, request.op, exc)
            return
        deadline = self._clock() + time_limit if time_limit else None
        if page is None:
            yield from self._stream(mid, entries, selection, size_limit, deadline)
            return
        yield from self._page(session, request, page, entries, selection, size_limit, deadline)

    def _stream(self, mid: int, entries: Iterator[Any], selection: AttributeSelection,
                size_limit: int, deadline: float | None) -> Iterator[bytes]:
        sent = 0
        try:
            for entry in entries:
                if size_limit and sent >= size_limit:
                    raise SizeLimitExceeded(f"more than {size_limit} entries match")
                if deadline is not None and sent % CLOCK_EVERY == 0 and self._clock() > deadline:
                    raise TimeLimitExceeded("search took longer than its time limit")
                yield wire.message(mid, selection.encode(entry))
                sent += 1
        except Exception as exc:
            yield answer(mid, Op.SEARCH_REQUEST, exc)
            return
        yield wire.message(mid, wire.result(Op.SEARCH_DONE, ResultCode.SUCCESS))

    def _page(self, session: Session, request: Request, page: Any, entries: Iterator[Any],
              selection: AttributeSelection, size_limit: int,
              deadline: float | None) -> Iterator[bytes]:
        mid = request.message_id
        paged: PagedSearches = session.paged
        fingerprint = self._fingerprint(request)
        try:
            if page.cookie:
                search = paged.resume(page.cookie, fingerprint)
            else:
                collected = []
                for n, entry in enumerate(entries):
                    if deadline is not None and n % CLOCK_EVERY == 0 and self._clock() > deadline:
                        raise TimeLimitExceeded("search took longer than its time limit")
                    collected.append(entry)
                search = paged.start(fingerprint, collected)
        except Exception as exc:
            yield answer(mid, request.op, exc)
            return
        total = len(search.entries)
        if page.size == 0:
            # RFC 2696: a zero size with a cookie abandons the search.
            yield wire.message(
                mid, wire.result(Op.SEARCH_DONE, ResultCode.SUCCESS),
                [response_control(total, b"")],
            )
            return
        end = min(search.offset + page.size, total)
        code = ResultCode.SUCCESS
        if size_limit and end > size_limit:
            end = max(search.offset, size_limit)
            code = ResultCode.SIZE_LIMIT_EXCEEDED
        for entry in search.entries[search.offset:end]:
            yield wire.message(mid, selection.encode(entry))
        search.offset = end
        cookie = b""
        if end < total and code is ResultCode.SUCCESS:
            cookie = paged.park(search)
        yield wire.message(
            mid, wire.result(Op.SEARCH_DONE, code), [response_control(total, cookie)]
        )

    def _fingerprint(self, request: Request) -> bytes:
        body = request.body
        base = body.baseObject
        parts = [
            base if isinstance(base, bytes) else str(base).encode(),
            str(body.scope).encode(),
            body.filter.toWire(),
            b"\0".join(a if isinstance(a, bytes) else str(a).encode() for a in body.attributes),
            str(body.typesOnly).encode(),
        ]
        return hashlib.sha256(b"\x1f".join(parts)).digest()

    # -- compare -----------------------------------------------------------------------

    def compare(self, session: Session, request: Request) -> bytes:
        body = request.body
        try:
            self.check_controls(request.controls)
            ava = body.ava
            attribute = text(ava.attributeDesc.value).split(";", 1)[0].strip().lower()
            value = text(ava.assertionValue.value)
            caller = self.resolver.resolve(session)
            same = self.directory.compare(body.entry, attribute, value, caller)
        except Exception as exc:
            return answer(request.message_id, request.op, exc)
        code = ResultCode.COMPARE_TRUE if same else ResultCode.COMPARE_FALSE
        return wire.message(request.message_id, wire.result(Op.COMPARE_RESPONSE, code))

    # -- extended ----------------------------------------------------------------------

    def extended(self, session: Session, request: Request) -> tuple[bytes, bool]:
        """The answer, and whether TLS must start right after it is written."""
        mid, body = request.message_id, request.body
        name = text(body.requestName)
        try:
            self.check_controls(request.controls)
            if name == STARTTLS_OID:
                if not self.tls_available:
                    raise ProtocolError("StartTLS is not configured on this server")
                if session.tls:
                    return wire.message(mid, wire.extended_response(
                        ResultCode.OPERATIONS_ERROR, "TLS is already active", name=name,
                    )), False
                return wire.message(
                    mid, wire.extended_response(ResultCode.SUCCESS, name=name)
                ), True
            if name == WHOAMI_OID:
                who = f"dn:{session.bound_dn}" if session.bound_dn else ""
                return wire.message(
                    mid, wire.extended_response(ResultCode.SUCCESS, value=who.encode())
                ), False
            if name == PASSWORD_MODIFY_OID:
                raise UnwillingToPerform("the directory is read-only: passwords change elsewhere")
            raise ProtocolError(f"extended operation {name} is not supported")
        except Exception as exc:
            return answer(mid, request.op, exc), False

    def read_only(self, request: Request) -> bytes:
        return answer(
            request.message_id, request.op, UnwillingToPerform("the directory is read-only")
        )
