"""The sockets the server listens on: the configured addresses, and each app's own
loopback endpoint (``server`` in its ldap addon credentials), opened and closed as apps come
and go so that "which app is asking" can be told by the local address.

Listeners are asyncio servers on the shared loop. Sockets are bound and listening at once
(so an app endpoint accepts, into the backlog, from the moment its app appears, and a port
in use is reported where it is asked for); serving them starts on the loop's next turn.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass

from gateway.config.model import ListenAddress
from gateway.runtime.errors import CannotListen
from ldap.factory import LdapFactory

log = logging.getLogger(__name__)

Address = tuple[str, int]
WILDCARDS = ("0.0.0.0", "::", "")  # noqa: S104 (names, compared with; nothing binds them)
# A burst of app workers connecting at once must not see SYN retries of a second and more
# (Twisted's default backlog was 50). The kernel caps this at net.core.somaxconn.
BACKLOG = 1024


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket, as Twisted's listenTCP made one: IPv6 for an IPv6 literal,
    IPv4 otherwise ("" is every IPv4 address), SO_REUSEADDR so a restart can rebind."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class Listener:
    """One listening socket; ``serving`` hands it to the loop, which then owns it."""

    sock: socket.socket
    address: Address
    serving: asyncio.Task[asyncio.AbstractServer]

    def close(self) -> None:
        # Not cancel(): create_server may already own the socket, and only the server it
        # returns may close it then (uvloop closes the descriptor itself, later).
        self.serving.add_done_callback(self._close)

    def _close(self, task: asyncio.Task[asyncio.AbstractServer]) -> None:
        if task.cancelled() or task.exception() is not None:
            self.sock.close()
        else:
            task.result().close()


def listen(host: str, port: int, factory: LdapFactory) -> Listener:
    sock = bind_socket(host, port)
    loop = asyncio.get_running_loop()
    serving = loop.create_task(loop.create_server(
        factory, sock=sock, backlog=BACKLOG,
        ssl=factory.tls_context if factory.tls else None,
    ))
    host_, port_ = sock.getsockname()[:2]
    return Listener(sock, (host_, port_), serving)


class ListenerSet:
    def __init__(self, plain: LdapFactory, ldaps: LdapFactory | None) -> None:
        self._plain = plain
        self._ldaps = ldaps
        self._static: list[Listener] = []
        self._apps: dict[Address, Listener] = {}
        self.primary_port: int | None = None

    async def start(self, listen_on: list[ListenAddress],
                    listen_ldaps: list[ListenAddress]) -> list[Address]:
        bound: list[Address] = []
        for address in listen_on:
            bound.append(self._listen_static(address, self._plain))
            if self.primary_port is None:
                self.primary_port = bound[-1][1]
        for address in listen_ldaps:
            assert self._ldaps is not None
            assert self._ldaps.tls_context is not None
            bound.append(self._listen_static(address, self._ldaps))
        # Serving from here on: the runtime may announce these addresses.
        await asyncio.gather(*(listener.serving for listener in self._static))
        return bound

    def _listen_static(self, address: ListenAddress, factory: LdapFactory) -> Address:
        try:
            listener = listen(address.host, address.port, factory)
        except OSError as exc:
            raise CannotListen(f"{address.host}:{address.port}", str(exc)) from exc
        self._static.append(listener)
        return listener.address

    def _covered(self, host: str, port: int) -> bool:
        for listener in self._static:
            real_host, real_port = listener.address
            if real_port == port and (real_host in WILDCARDS or real_host == host):
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
            self._apps.pop(address).close()
            log.info("stopped listening on %s:%d (app gone)", *address)
        for address, app_id in wanted.items():
            if address in self._apps:
                continue
            try:
                self._apps[address] = listen(address[0], address[1], self._plain)
            except OSError as exc:
                log.error("cannot listen on %s:%d for app %s: %s", *address, app_id, exc)
                continue
            log.info("listening on %s:%d for app %s", *address, app_id)

    @property
    def app_addresses(self) -> list[Address]:
        return sorted(self._apps)

    async def stop(self) -> None:
        listeners = [*self._static, *self._apps.values()]
        self._static.clear()
        self._apps.clear()
        for listener in listeners:
            try:
                server = await listener.serving
            except OSError:
                listener.sock.close()
                continue
            server.close()
