"""One LDAP connection: bytes in, requests answered in order, answers out at the client's pace.

Requests run one at a time, in the order sent (RFC 4511 lets a server serialise, and a bind
must not overlap anything anyway). A bind awaits the portal; a search streams its entries
as the transport accepts them: this protocol is the transport's push producer, so when a
client stops reading, the search pauses and reading stops too, until it catches up or the
idle timeout closes the connection. Malformed input gets a Notice of Disconnection (or, when
the request can be identified, its own error answer) and nothing crashes the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from twisted.internet import defer, protocol
from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from zope.interface import implementer

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


@implementer(IPushProducer)
class LdapProtocol(protocol.Protocol):
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
        self._paused = False
        self._closing = False
        self._refused = False
        self._limit_key: str | None = None
        self.session: Session | None = None
        # Read by the server's idle sweep (one timer for all connections, not one each).
        self.last_active = 0.0

    # -- connection lifecycle -------------------------------------------------------------

    def connectionMade(self) -> None:
        peer, host = self.transport.getPeer(), self.transport.getHost()  # type: ignore[union-attr]
        config = self.factory.config
        self.session = Session(
            peer=getattr(peer, "host", ""),
            local=getattr(host, "host", ""),
            tls=self._tls_from_start,
            paged=PagedSearches(config.max_paged_searches),
        )
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        if hasattr(self.transport, "bufferSize"):
            self.transport.bufferSize = config.max_pending_output_bytes  # type: ignore[union-attr]
        self._limit_key = self.factory.connection_opened(self)
        if self._limit_key is None:
            self._refused = True
        self.last_active = self.factory.clock()

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self._stream = None
        self._closing = True
        self.factory.connection_closed(self, self._limit_key)

    def timeoutConnection(self) -> None:
        # A client that sent half a request, or stopped reading answers: cut it off, without
        # waiting for a buffer it will never drain.
        self._closing = True
        self.transport.abortConnection()  # type: ignore[union-attr]

    # -- producer interface (the transport's write buffer) --------------------------------

    def pauseProducing(self) -> None:
        self._paused = True
        self.transport.pauseProducing()  # type: ignore[union-attr]

    def resumeProducing(self) -> None:
        if self._closing:
            return
        self._paused = False
        self.last_active = self.factory.clock()
        self._pump()
        if not self._paused and not self._busy:
            self.transport.resumeProducing()  # type: ignore[union-attr]
            self._next()

    def stopProducing(self) -> None:
        self._stream = None
        self._closing = True

    # -- input ----------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        self.last_active = self.factory.clock()
        try:
            self._decoder.feed(data)
        except MalformedRequest as exc:
            self._disconnect(exc)
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
        self._closing = True
        self._stream = None
        self.transport.loseConnection()  # type: ignore[union-attr]

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
            self.transport.pauseProducing()  # type: ignore[union-attr]
            future = asyncio.ensure_future(ops.bind(session, request))
            d = defer.Deferred.fromFuture(future)
            d.addCallback(self._bound)
            d.addErrback(self._bind_crashed, request)
        elif op == Op.SEARCH_REQUEST:
            self._stream = ops.search(session, request)
            self._stream_id = request.message_id
            self._pump()
        elif op == Op.COMPARE_REQUEST:
            self._write(ops.compare(session, request))
        elif op == Op.EXTENDED_REQUEST:
            response, start_tls = ops.extended(session, request)
            self._write(response)
            if start_tls:
                self.transport.startTLS(self.factory.tls_options)  # type: ignore[union-attr]
                session.tls = True
        else:
            self._write(ops.read_only(request))

    def _bound(self, response: bytes) -> None:
        self._busy = False
        if self._closing:
            return
        self._write(response)
        if not self._paused:
            self.transport.resumeProducing()  # type: ignore[union-attr]
            self._next()

    def _bind_crashed(self, failure: Failure, request: Request) -> None:
        log.error("bind crashed", exc_info=failure.value)
        self._bound(answer(request.message_id, request.op, failure.value))

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
