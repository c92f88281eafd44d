"""One LDAP connection: bytes in, requests answered in order, answers out at the client's pace.

Requests run one at a time, in the order sent (RFC 4511 lets a server serialise, and a bind
must not overlap anything anyway). A bind awaits the portal; a search streams its entries
as the transport accepts them: when the transport's write buffer passes its high-water mark
(``pause_writing``), the search pauses and reading stops too, until the client catches up or
the idle timeout closes the connection. Malformed input gets a Notice of Disconnection (or,
when the request can be identified, its own error answer) and nothing crashes the server.

This is an asyncio protocol on the loop's own transports (uvloop's are C): accept, read,
write and close cost no Python per connection, which is most of what a connect + bind +
unbind client pays for. Twisted stays installed on the same loop for the other servers.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from ldap import wire
from ldap.caller import Session
from ldap.codec import Request, RequestDecoder
from ldap.errors import MalformedRequest
from ldap.operations import answer
from ldap.paging import PagedSearches
from ldap.wire import Op, ResultCode

if TYPE_CHECKING:
    from ldap.factory import LdapFactory

log = logging.getLogger(__name__)


class LdapProtocol(asyncio.Protocol):
    def __init__(self, factory: LdapFactory, *, tls: bool) -> None:
        self.factory = factory
        config = factory.config
        self._decoder = RequestDecoder(
            max_pdu_bytes=config.max_pdu_bytes, max_filter_depth=config.max_filter_depth
        )
        self._tls_from_start = tls
        self._busy = False
        self._stream: Iterator[bytes] | None = None
        self._stream_id: int | None = None
        # _paused: the client is not reading (write buffer full); _reading: whether the
        # transport reads. Reading stops while paused or while a request is busy.
        self._paused = False
        self._reading = True
        self._closing = False
        self._refused = False
        self._limit_key: str | None = None
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        # Read by the server's idle sweep (one timer for all connections, not one each).
        self.last_active = 0.0

    # -- connection lifecycle -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's do not subclass asyncio.Transport, hence no check).
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        factory = self.factory
        if not factory.admit(self):
            # Over the server-wide cap: closed before any byte is read.
            self._closing = True
            transport.abort()
            return
        peer, host = transport.get_extra_info("peername"), transport.get_extra_info("sockname")
        config = factory.config
        self.session = Session(
            peer=peer[0] if peer else "",
            local=host[0] if host else "",
            tls=self._tls_from_start,
            paged=PagedSearches(config.max_paged_searches),
        )
        transport.set_write_buffer_limits(high=config.max_pending_output_bytes)
        self._limit_key = factory.connection_opened(self)
        if self._limit_key is None:
            self._refused = True
        self.last_active = factory.clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stream = None
        self._closing = True
        key, self._limit_key = self._limit_key, None
        # Once only: a failed StartTLS handshake may report the loss as well.
        self.factory.connection_closed(self, key)

    def disconnect(self, notice: bytes) -> None:
        """Say goodbye (a Notice of Disconnection) and close once it is written."""
        self._write(notice)
        self._close()

    def abort(self) -> None:
        """Cut the connection off, without waiting for a buffer it may never drain (a
        client that sent half a request or stopped reading, or one shutdown gave up on)."""
        self._closing = True
        if self.transport is not None:
            self.transport.abort()

    # -- flow control (the transport's write buffer) --------------------------------------

    def pause_writing(self) -> None:
        self._paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        if self._closing:
            return
        self._paused = False
        self.last_active = self.factory.clock()
        self._pump()
        if not self._paused and not self._busy:
            self._resume_reading()
            self._next()

    def _pause_reading(self) -> None:
        if self._reading and self.transport is not None and not self._closing:
            self._reading = False
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if not self._reading and self.transport is not None and not self._closing:
            self._reading = True
            self.transport.resume_reading()

    # -- input ----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self.last_active = self.factory.clock()
        try:
            self._decoder.feed(data)
        except MalformedRequest as exc:
            self._disconnect(exc)
            return
        if self._busy:
            # More input while a bind runs: stop reading until it is answered, so a client
            # cannot queue without bound. (Stopping lazily, here, spares the common
            # bind-then-wait client two event-loop registrations per bind.)
            self._pause_reading()
            return
        self._next()

    def _next(self) -> None:
        """Run queued requests until one must wait (a bind, a paused search) or none is left."""
        while not (self._busy or self._paused or self._closing or self._stream is not None):
            try:
                request = self._decoder.next_request()
            except MalformedRequest as exc:
                self._disconnect(exc)
                return
            if request is None:
                return
            self._dispatch(request)

    def _disconnect(self, exc: MalformedRequest) -> None:
        """Answer a request we cannot serve and close (RFC 4511 section 4.1.1)."""
        if exc.error is not None and exc.message_id is not None and exc.op in wire.RESPONSE_OF:
            assert exc.op is not None
            self._write(answer(exc.message_id, exc.op, exc.error))
        else:
            log.info("closing LDAP connection from %s: %s",
                     self.session.peer if self.session else "?", exc.reason)
            self._write(wire.notice_of_disconnection(ResultCode.PROTOCOL_ERROR, exc.reason))
        self._close()

    def _close(self) -> None:
        """Close once what was written has gone (asyncio's close() flushes first)."""
        self._closing = True
        self._stream = None
        if self.transport is not None:
            self.transport.close()

    def _write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    # -- dispatch ------------------------------------------------------------------------

    def _dispatch(self, request: Request) -> None:
        ops = self.factory.operations
        session = self.session
        assert session is not None
        self.factory.count(request.op)
        if self._refused:
            if request.op in wire.RESPONSE_OF:
                self._write(wire.message(request.message_id, wire.result(
                    wire.RESPONSE_OF[request.op], ResultCode.BUSY,
                    "too many connections from this app; try again later",
                )))
            self._close()
            return
        op = request.op
        if op == Op.UNBIND_REQUEST:
            self._close()
        elif op == Op.ABANDON_REQUEST:
            pass  # requests run in order, so the abandoned one has already been answered
        elif op == Op.BIND_REQUEST:
            self._busy = True
            task = asyncio.get_running_loop().create_task(ops.bind(session, request))
            task.add_done_callback(partial(self._bound, request))
        elif op == Op.SEARCH_REQUEST:
            self._stream = ops.search(session, request)
            self._stream_id = request.message_id
            self._pump()
        elif op == Op.COMPARE_REQUEST:
            self._write(ops.compare(session, request))
        elif op == Op.EXTENDED_REQUEST:
            response, start_tls = ops.extended(session, request)
            if start_tls:
                self._start_tls(response)
            else:
                self._write(response)
        else:
            self._write(ops.read_only(request))

    def _bound(self, request: Request, task: asyncio.Task[bytes]) -> None:
        try:
            response = task.result()
        except BaseException as exc:  # a bug, or shutdown: answered, not raised
            log.error("bind crashed", exc_info=exc)
            response = answer(request.message_id, request.op, exc)
        self._busy = False
        if self._closing:
            return
        self._write(response)
        if not self._paused:
            self._resume_reading()
            self._next()

    # -- StartTLS --------------------------------------------------------------------------

    def _start_tls(self, response: bytes) -> None:
        """Answer success in clear, then handshake on the same socket (RFC 4511 4.14).

        Reading stops before the answer goes out, so the client's ClientHello is read by
        the TLS layer, never by the LDAP decoder; requests wait until the handshake ends.
        """
        transport = self.transport
        assert transport is not None
        self._busy = True
        self._pause_reading()
        transport.write(response)
        context = self.factory.tls_context
        assert context is not None
        task = asyncio.get_running_loop().create_task(self._handshake(transport, context))
        task.add_done_callback(_log_crash)

    async def _handshake(self, transport: asyncio.Transport, context: ssl.SSLContext) -> None:
        loop = asyncio.get_running_loop()
        try:
            secure = await loop.start_tls(transport, self, context, server_side=True)
        except OSError as exc:  # ssl.SSLError, a reset, the handshake timeout
            log.info("StartTLS with %s failed: %s",
                     self.session.peer if self.session else "?", exc)
            transport.abort()
            self.connection_lost(exc)
            return
        if secure is None or self._closing:
            return
        assert self.session is not None
        self.transport = secure
        self.session.tls = True
        # start_tls resumed reading on the new transport.
        self._reading = True
        secure.set_write_buffer_limits(high=self.factory.config.max_pending_output_bytes)
        self._busy = False
        if not self._paused:
            self._next()

    def _pump(self) -> None:
        stream = self._stream
        if stream is None:
            return
        try:
            while not self._paused and not self._closing:
                chunk = next(stream, None)
                if chunk is None:
                    self._stream = None
                    break
                self._write(chunk)
        except Exception as exc:  # a bug in a search must not take the connection's loop down
            log.exception("search failed")
            self._stream = None
            assert self._stream_id is not None
            self._write(answer(self._stream_id, Op.SEARCH_REQUEST, exc))

    @property
    def streaming(self) -> bool:
        return self._stream is not None

    def describe(self) -> dict[str, Any]:
        s = self.session
        return {"peer": s.peer if s else None, "local": s.local if s else None}


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("StartTLS crashed", exc_info=task.exception())
