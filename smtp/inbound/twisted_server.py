"""A Twisted listener (IMAP, POP3; plain or implicit TLS) as a runtime ``Server``.

``start`` binds with ``listenTCP``/``listenSSL`` on the shared reactor (the asyncio one, on
our loop) and answers the bound address (port 0 gives a free one); ``stop(grace)`` stops
accepting, says goodbye to every open connection (``farewell``), waits up to ``grace`` for
them to close and then aborts the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, protocol, ssl

from gateway.config.model import ListenAddress
from gateway.runtime.server import Address

log = logging.getLogger(__name__)

_CLOSE_POLL = 0.02


class OpenConnections:
    def __init__(self) -> None:
        self.open: set[Any] = set()

    def add(self, proto: Any) -> None:
        self.open.add(proto)

    def discard(self, proto: Any) -> None:
        self.open.discard(proto)


class TwistedServer:
    def __init__(
        self, name: str, listen: ListenAddress, factory: protocol.ServerFactory,
        connections: OpenConnections, *, farewell: bytes,
        tls: Callable[[], ssl.CertificateOptions] | None = None,
    ) -> None:
        self.name = name
        self._listen = listen
        self._factory = factory
        self._connections = connections
        self._farewell = farewell
        self._tls = tls
        self._port: Any = None

    async def start(self) -> list[Address]:
        from twisted.internet import reactor

        host, port = self._listen.host, self._listen.port
        if self._tls is not None:
            self._port = reactor.listenSSL(port, self._factory, self._tls(), interface=host)  # type: ignore[attr-defined]
        else:
            self._port = reactor.listenTCP(port, self._factory, interface=host)  # type: ignore[attr-defined]
        bound = self._port.getHost()
        return [(str(bound.host), int(bound.port))]

    async def stop(self, grace: float) -> None:
        if self._port is None:
            return
        loop = asyncio.get_running_loop()
        await defer.maybeDeferred(self._port.stopListening).asFuture(loop)
        self._port = None
        for proto in list(self._connections.open):
            if proto.transport is not None:
                proto.transport.write(self._farewell)
                proto.transport.loseConnection()
        deadline = loop.time() + max(0.0, grace)
        while self._connections.open and loop.time() < deadline:  # noqa: ASYNC110
            # Connections close through Twisted callbacks; polling keeps this free of them.
            await asyncio.sleep(_CLOSE_POLL)
        for proto in list(self._connections.open):
            if proto.transport is not None:
                proto.transport.abortConnection()
