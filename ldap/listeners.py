"""The sockets the server listens on: the configured addresses, and each app's own
loopback endpoint (``server`` in its ldap addon credentials), opened and closed as apps come
and go so that "which app is asking" can be told by the local address.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from twisted.internet import defer
from twisted.internet.error import CannotListenError

from gateway.config.model import ListenAddress
from gateway.runtime.errors import CannotListen
from ldap.factory import LdapFactory

log = logging.getLogger(__name__)

Address = tuple[str, int]
WILDCARDS = ("0.0.0.0", "::", "")  # noqa: S104 (names, compared with; nothing binds them)
# Twisted's default backlog is 50: a burst of app workers connecting at once would see
# SYN retries of a second and more. The kernel caps this at net.core.somaxconn.
BACKLOG = 1024


class ListenerSet:
    def __init__(self, reactor: Any, plain: LdapFactory, ldaps: LdapFactory | None) -> None:
        self._reactor = reactor
        self._plain = plain
        self._ldaps = ldaps
        self._static: list[Any] = []
        self._apps: dict[Address, Any] = {}
        self.primary_port: int | None = None

    def start(self, listen: list[ListenAddress],
              listen_ldaps: list[ListenAddress]) -> list[Address]:
        bound: list[Address] = []
        for address in listen:
            bound.append(self._listen(address.host, address.port, self._plain, static=True))
            if self.primary_port is None:
                self.primary_port = bound[-1][1]
        for address in listen_ldaps:
            assert self._ldaps is not None
            assert self._ldaps.tls_options is not None
            bound.append(self._listen(address.host, address.port, self._ldaps, static=True))
        return bound

    def _listen(self, host: str, port: int, factory: LdapFactory, *, static: bool) -> Address:
        try:
            if factory.tls:
                port_obj = self._reactor.listenSSL(port, factory, factory.tls_options,
                                                   interface=host, backlog=BACKLOG)
            else:
                port_obj = self._reactor.listenTCP(port, factory, interface=host,
                                                   backlog=BACKLOG)
        except CannotListenError as exc:
            raise CannotListen(f"{host}:{port}", str(exc.socketError)) from exc
        if static:
            self._static.append(port_obj)
        real = port_obj.getHost()
        return (real.host, real.port)

    def _covered(self, host: str, port: int) -> bool:
        for port_obj in self._static:
            real = port_obj.getHost()
            if real.port == port and (real.host in WILDCARDS or real.host == host):
                return True
        return False

    def sync_apps(self, endpoints: list[tuple[str, str, int | None]]) -> None:
        """Listen on exactly the app endpoints given: (app id, address, port or None)."""
        wanted: dict[Address, str] = {}
        for app_id, host, port in endpoints:
            real_port = port or self.primary_port
            if real_port is None or self._covered(host, real_port):
                continue
            wanted[(host, real_port)] = app_id
        for address in [a for a in self._apps if a not in wanted]:
            self._apps.pop(address).stopListening()
            log.info("stopped listening on %s:%d (app gone)", *address)
        for address, app_id in wanted.items():
            if address in self._apps:
                continue
            try:
                self._apps[address] = self._reactor.listenTCP(
                    address[1], self._plain, interface=address[0], backlog=BACKLOG
                )
            except CannotListenError as exc:
                log.error("cannot listen on %s:%d for app %s: %s", *address, app_id,
                          exc.socketError)
                continue
            log.info("listening on %s:%d for app %s", *address, app_id)

    @property
    def app_addresses(self) -> list[Address]:
        return sorted(self._apps)

    async def stop(self) -> None:
        ports = [*self._static, *self._apps.values()]
        self._static.clear()
        self._apps.clear()
        await defer.gatherResults(
            [defer.maybeDeferred(p.stopListening) for p in ports], consumeErrors=True
        ).asFuture(asyncio.get_running_loop())
