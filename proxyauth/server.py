"""``build(ctx)``: the wall as one of the runtime's servers (aiohttp's low-level ``Server``
with a ``ServerRunner`` and a ``TCPSite`` on the shared loop, never ``web.run_app``, which
wants the loop and the signals for itself).

The routing table is the container manager's (``ctx.extras["routes"]``) when it provides
one, else ``StoreRoutes``: the apps in the store, kept current by change notifications.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Any, final

from aiohttp import web

from gateway.audit import AuditLog
from gateway.auth import Portal
from gateway.config import ConfigError
from gateway.config.proxyauth import ProxyAuthConfig
from gateway.runtime.errors import CannotListen
from gateway.runtime.server import Address, Server, ServerContext
from gateway.store import Store
from proxyauth.access import AccessCheck
from proxyauth.app import WallService, make_wall
from proxyauth.metrics import WallMetrics
from proxyauth.routes import ContainerRoutes, RouteTable, StoreRoutes
from proxyauth.sessions import SessionConfig, SessionStore, StoreSessions

log = logging.getLogger(__name__)

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def check_config(config: ProxyAuthConfig, source: str = "<config>") -> None:
    """What the loader's types cannot say; raises ``ConfigError`` naming the key."""
    for cidr in config.trusted_proxies:
        try:
            ipaddress.ip_network(cidr.strip(), strict=False)
        except ValueError:
            raise ConfigError(
                source, "proxyauth.trusted_proxies", f"{cidr!r} is not an address or CIDR"
            ) from None
    storage = config.session_storage
    if storage != "store" and not storage.startswith(REDIS_SCHEMES):
        raise ConfigError(
            source, "proxyauth.session_storage",
            "must be \"store\" or a redis://, rediss:// or unix:// URL",
        )
    path = config.forward_auth_path
    if not path.startswith("/") or path.rstrip("/") in ("", "/login", "/logout"):
        raise ConfigError(
            source, "proxyauth.forward_auth_path",
            "must be an absolute path other than /, /login and /logout",
        )
    if config.session_idle > config.session_lifetime:
        raise ConfigError(
            source, "proxyauth.session_idle", "must not be longer than session_lifetime"
        )
    if not config.cookie_name or any(c in config.cookie_name for c in " ;,=\t\"\\"):
        raise ConfigError(source, "proxyauth.cookie_name", "must be a plain cookie name")


def session_store(config: ProxyAuthConfig, store: Store) -> SessionStore:
    session_config = SessionConfig.from_config(config)
    if config.session_storage == "store":
        return StoreSessions(store.sessions, store.changes, session_config)
    # Imported only when configured: the embedded default never loads the Redis client.
    from proxyauth.sessions_redis import RedisSessions

    password = config.session_redis_password
    return RedisSessions(
        config.session_storage, store.changes, session_config,
        password=password.value if password is not None else None, apps=store.apps,
    )


@final
class ProxyAuthServer:
    name = "proxyauth"

    def __init__(
        self,
        config: ProxyAuthConfig,
        *,
        store: Store,
        portal: Portal,
        audit: AuditLog | None = None,
        metrics: WallMetrics | None = None,
        routes: RouteTable | None = None,
    ) -> None:
        self.config = config
        self.sessions = session_store(config, store)
        self.routes: RouteTable = (
            routes if routes is not None else StoreRoutes(store.apps, store.changes)
        )
        self.wall: WallService = make_wall(
            config, portal=portal, sessions=self.sessions, routes=self.routes,
            access=AccessCheck(store), audit=audit, metrics=metrics,
        )
        self._runner: web.ServerRunner | None = None

    async def start(self) -> list[Address]:
        listen = self.config.listen
        # Opens the session backend and the route table: a dead Redis fails the start
        # here, naming itself.
        # Every request is made on this loop: look it up once, not per request.
        self._loop = asyncio.get_running_loop()
        await self.wall.open()
        try:
            server = web.Server(
                self.wall.handler, request_factory=self._request_factory,
                access_log=log if self.config.access_log else None,
            )
            runner = web.ServerRunner(server)
            await runner.setup()
            site = web.TCPSite(runner, listen.host, listen.port)
            try:
                await site.start()
            except OSError as exc:
                await runner.cleanup()
                raise CannotListen(str(listen), (exc.strerror or str(exc)).lower()) from exc
        except BaseException:
            await self.wall.close()
            raise
        self._runner = runner
        return [(a[0], a[1]) for a in runner.addresses]

    def _request_factory(self, *args: Any) -> web.BaseRequest:
        # aiohttp's own factory, with the wall's body limit (its forms; proxied bodies
        # are streamed and bounded by max_body_bytes instead).
        return web.BaseRequest(*args, self._loop, client_max_size=self.wall.client_max_size)

    async def stop(self, grace: float) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        # Long responses and WebSockets get the grace, then are cut (aiohttp takes the
        # timeout only at construction, before the grace is known).
        runner._shutdown_timeout = grace
        await runner.cleanup()
        await self.wall.close()


def build(ctx: ServerContext) -> Server:
    config = ctx.config.proxyauth
    check_config(config, ctx.config.source)
    if not config.secure_cookies:
        log.warning(
            "proxyauth: secure_cookies = false: session cookies are sent over plain HTTP. "
            "For development only; the login page says so."
        )
    if not config.trusted_proxies:
        log.info("proxyauth: no trusted_proxies: X-Forwarded-* from clients are ignored "
                 "and the forward-auth endpoint answers nobody")
    table = ctx.extras.get("routes")
    return ProxyAuthServer(
        config, store=ctx.store, portal=ctx.portal, audit=ctx.audit,
        metrics=WallMetrics(ctx.metrics.registry),
        routes=ContainerRoutes(table) if table is not None else None,
    )
