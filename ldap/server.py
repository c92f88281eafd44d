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
from ldap.tls import server_context
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
    ) -> None:
        self.config = config
        self._store = store
        self.index = DirectoryIndex(Tree(config.base_dn))
        self.sync = IndexSync(self.index, store)
        tls_context = None
        if config.tls_cert is not None and config.tls_key is not None:
            tls_context = server_context(config.tls_cert, config.tls_key)
        elif config.listen_ldaps:
            raise ValueError("ldap.listen_ldaps needs ldap.tls_cert and ldap.tls_key")
        self.resolver = CallerResolver(self.index, parse_networks(config.mail_readers))
        self.directory = Directory(self.index, starttls=tls_context is not None)
        binds = BindHandler(portal, self.index, self.resolver, config, audit,
                            parse_networks(config.directory_allowlist))
        self.operations = Operations(
            self.directory, binds, self.resolver, config, tls_available=tls_context is not None
        )
        self.book = ConnectionBook()
        limiter = connection_limiter or PerKeyCap(config.max_connections_per_app)
        ldap_metrics = LdapMetrics(metrics.registry)
        plain = LdapFactory(config, self.operations, self.resolver, limiter, ldap_metrics,
                            self.book, tls_context=tls_context)
        ldaps = None
        if tls_context is not None:
            ldaps = LdapFactory(config, self.operations, self.resolver, limiter, ldap_metrics,
                                self.book, tls=True, tls_context=tls_context)
        self.listeners = ListenerSet(plain, ldaps)
        self.addresses: list[Address] = []
        self._plain = plain
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> list[Address]:
        self.sync.start()
        await self._store.db.start_change_feed()
        await self.index.load(self._store)
        self.addresses = await self.listeners.start(self.config.listen,
                                                    self.config.listen_ldaps)
        self.index.app_listeners.append(self._apps_changed)
        self._apps_changed()
        if self.config.idle_timeout:
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep(min(1.0, self.config.idle_timeout / 4)), name="ldap-idle-sweep")
        log.info("LDAP listening on %s", ", ".join(f"{h}:{p}" for h, p in self.addresses))
        return list(self.addresses)

    async def _sweep(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                self._plain.sweep_idle()
            except Exception:
                log.exception("LDAP idle sweep failed")

    def _apps_changed(self) -> None:
        if self.listeners.primary_port is not None:
            self.listeners.sync_apps(self.index.ldap_endpoints())

    async def settled(self) -> None:
        """Wait until every store change heard so far shows in the directory."""
        await self.sync.settled()

    async def stop(self, grace: float) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._apps_changed in self.index.app_listeners:
            self.index.app_listeners.remove(self._apps_changed)
        await self.listeners.stop()
        notice = wire.notice_of_disconnection(ResultCode.UNAVAILABLE, "server shutting down")
        for proto in list(self.book.open):
            proto.disconnect(notice)
        deadline = time.monotonic() + grace
        while self.book.open and time.monotonic() < deadline:  # noqa: ASYNC110
            # Connections close through transport callbacks; polling keeps this free of them.
            await asyncio.sleep(_CLOSE_POLL)
        for proto in list(self.book.open):
            proto.abort()
        await self.sync.stop()


def build(ctx: ServerContext) -> LdapServer:
    """What the runtime calls when ``[ldap] enabled = true``."""
    limiter = ctx.extras.get("ldap_connection_limiter") or ctx.extras.get("connection_limiter")
    return LdapServer(
        ctx.config.ldap, ctx.store, ctx.portal, ctx.audit, ctx.metrics,
        connection_limiter=limiter,
    )
