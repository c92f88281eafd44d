"""The LDAP server as the runtime sees it: ``build(ctx)`` → ``start()`` → ``stop(grace)``.

Start loads the directory index from the store and keeps it patched from change
notifications, then listens on the configured addresses and on each app's own endpoint.
Stop closes the listeners, tells each client the server is going away (Notice of
Disconnection, unavailable), lets them close within the grace, and cuts off the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from twisted.internet.task import LoopingCall

from gateway.audit import AuditLog
from gateway.auth import Portal
from gateway.config.ldap import LdapConfig
from gateway.metrics import Metrics
from gateway.runtime.server import Address, ServerContext
from gateway.store import Store
from ldap import wire
from ldap.bind import BindHandler
from ldap.caller import CallerResolver, parse_networks
from ldap.directory import Directory
from ldap.entries import Tree
from ldap.factory import ConnectionBook, ConnectionLimiter, LdapFactory, LdapMetrics, PerKeyCap
from ldap.index import DirectoryIndex
from ldap.listeners import ListenerSet
from ldap.operations import Operations
from ldap.sync import IndexSync
from ldap.tls import server_options
from ldap.wire import ResultCode

log = logging.getLogger(__name__)

# How often stop() looks whether every client has gone.
_CLOSE_POLL = 0.02


class LdapServer:
    name = "ldap"

    def __init__(
        self,
        config: LdapConfig,
        store: Store,
        portal: Portal,
        audit: AuditLog,
        metrics: Metrics,
        *,
        connection_limiter: ConnectionLimiter | None = None,
        reactor: Any = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.config = config
        self._store = store
        self._reactor = reactor
        self.index = DirectoryIndex(Tree(config.base_dn))
        self.sync = IndexSync(self.index, store)
        tls_options = None
        if config.tls_cert is not None and config.tls_key is not None:
            tls_options = server_options(config.tls_cert, config.tls_key)
        elif config.listen_ldaps:
            raise ValueError("ldap.listen_ldaps needs ldap.tls_cert and ldap.tls_key")
        self.resolver = CallerResolver(self.index, parse_networks(config.mail_readers))
        self.directory = Directory(self.index, starttls=tls_options is not None)
        binds = BindHandler(portal, self.index, self.resolver, config, audit,
                            parse_networks(config.directory_allowlist))
        self.operations = Operations(
            self.directory, binds, self.resolver, config, tls_available=tls_options is not None
        )
        self.book = ConnectionBook()
        limiter = connection_limiter or PerKeyCap(config.max_connections_per_app)
        ldap_metrics = LdapMetrics(metrics.registry)
        plain = LdapFactory(config, self.operations, self.resolver, limiter, ldap_metrics,
                            self.book, tls_options=tls_options)
        ldaps = None
        if tls_options is not None:
            ldaps = LdapFactory(config, self.operations, self.resolver, limiter, ldap_metrics,
                                self.book, tls=True, tls_options=tls_options)
        self.listeners = ListenerSet(reactor, plain, ldaps)
        self.addresses: list[Address] = []
        self._plain = plain
        self._sweeper: LoopingCall | None = None

    async def start(self) -> list[Address]:
        self.sync.start()
        await self._store.db.start_change_feed()
        await self.index.load(self._store)
        self.addresses = self.listeners.start(self.config.listen, self.config.listen_ldaps)
        self.index.app_listeners.append(self._apps_changed)
        self._apps_changed()
        if self.config.idle_timeout:
            self._sweeper = LoopingCall(self._plain.sweep_idle)
            self._sweeper.clock = self._reactor
            self._sweeper.start(min(1.0, self.config.idle_timeout / 4), now=False)
        log.info("LDAP listening on %s", ", ".join(f"{h}:{p}" for h, p in self.addresses))
        return list(self.addresses)

    def _apps_changed(self) -> None:
        if self.listeners.primary_port is not None:
            self.listeners.sync_apps(self.index.ldap_endpoints())

    async def settled(self) -> None:
        """Wait until every store change heard so far shows in the directory."""
        await self.sync.settled()

    async def stop(self, grace: float) -> None:
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()
        if self._apps_changed in self.index.app_listeners:
            self.index.app_listeners.remove(self._apps_changed)
        await self.listeners.stop()
        notice = wire.notice_of_disconnection(ResultCode.UNAVAILABLE, "server shutting down")
        for proto in list(self.book.open):
            if proto.transport is not None:
                proto.transport.write(notice)
                proto.transport.loseConnection()
        deadline = time.monotonic() + grace
        while self.book.open and time.monotonic() < deadline:  # noqa: ASYNC110
            # Connections close through Twisted callbacks; polling keeps this free of them.
            await asyncio.sleep(_CLOSE_POLL)
        for proto in list(self.book.open):
            if proto.transport is not None:
                proto.transport.abortConnection()
        await self.sync.stop()


def build(ctx: ServerContext) -> LdapServer:
    """What the runtime calls when ``[ldap] enabled = true``."""
    limiter = ctx.extras.get("ldap_connection_limiter") or ctx.extras.get("connection_limiter")
    return LdapServer(
        ctx.config.ldap, ctx.store, ctx.portal, ctx.audit, ctx.metrics,
        connection_limiter=limiter,
    )
