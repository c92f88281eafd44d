"""One gateway: the shared objects (store, portal, policy, audit, metrics) and the servers.

``open()`` imports the enabled sections' builders, builds what every server shares and
creates the demo admin; ``start()`` builds the servers (registry sections, then servers
added with ``add()``, then the admin endpoint with /healthz, /metrics and the ban book) and
starts them in that order; ``close()`` stops them in reverse, closes the policy, flushes the
audit log and closes the store, and reports every failure together. ``gateway serve`` drives
it through ``gateway.runtime.run``; tests drive it directly.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import IO, final

from gateway.audit import AuditLog
from gateway.auth import PasswordHasher, build_portal
from gateway.config import Config, ConfigError
from gateway.demo import DemoAdmin, announce, create_demo_admin, install_demo_app
from gateway.metrics import Metrics
from gateway.runtime.admin import AdminServer, make_app
from gateway.runtime.admin_bans import add_ban_routes, admin_token
from gateway.runtime.errors import ShutdownError, StartupError, describe
from gateway.runtime.group import ServerGroup, format_address
from gateway.runtime.health import HealthCheck
from gateway.runtime.policy import build_policy
from gateway.runtime.registry import ServerBuilder, build_servers, enabled_builders
from gateway.runtime.server import Address, ServerContext
from gateway.store import InvalidValue, Store, open_store
from ratelimit import AttemptPolicy, ConnectionLimiter

log = logging.getLogger(__name__)

# Writing the last audit batch gets this long: a store that is down must not hold the exit.
AUDIT_FLUSH_TIMEOUT = 5.0


@final
class Runtime:
    def __init__(self, config: Config, *, out: IO[str] | None = None) -> None:
        self.config = config
        self.metrics = Metrics()
        self.servers = ServerGroup(metrics=self.metrics)
        self._out = out if out is not None else sys.stdout
        self._extra: list[tuple[str, ServerBuilder]] = []
        self._builders: list[tuple[str, ServerBuilder]] = []
        self._context: ServerContext | None = None

    def add(self, builder: ServerBuilder, *, name: str = "extra") -> None:
        """Run the server(s) ``builder`` makes too, after the registry's, before the admin's."""
        self._extra.append((name, builder))

    @property
    def context(self) -> ServerContext:
        if self._context is None:
            raise RuntimeError("Runtime.open() has not run")
        return self._context

    async def open(self) -> ServerContext:
        """Open the store and build what the servers share; create the demo admin."""
        # Import the enabled sections' modules first: a missing one must fail the start
        # before anything is written (such as the demo admin and its one-time banner).
        self._builders = [*enabled_builders(self.config), *self._extra]
        store = await self._open_store()
        try:
            await store.db.start_change_feed()
            audit = AuditLog(store.audit)
            policy = self._policy()
            portal = await build_portal(
                self.config.auth, store, audit=audit, metrics=self.metrics, policy=policy
            )
            admin = await self._demo_admin(store, portal.verifier.hasher)
            if admin is not None:
                await install_demo_app(self.config, store)
        except BaseException:
            await store.close()
            raise
        if admin is not None:
            announce(admin, self._out)
        self._context = ServerContext(
            config=self.config, store=store, portal=portal, policy=policy, audit=audit,
            metrics=self.metrics, extras=self._connection_limiters(),
        )
        return self._context

    def _connection_limiters(self) -> dict[str, ConnectionLimiter]:
        """The per-door connection caps ([ratelimit]); none when rate limiting is off."""
        section = self.config.ratelimit
        if not section.enabled:
            return {}
        registry = self.metrics.registry
        return {
            "ldap_connection_limiter": ConnectionLimiter(
                section.ldap_connections_per_app, name="ldap", registry=registry
            ),
            "mail_connection_limiter": ConnectionLimiter(
                section.mail_connections_per_address, name="mail", registry=registry
            ),
        }

    def _policy(self) -> AttemptPolicy:
        try:
            return build_policy(self.config, self.metrics.registry)
        except ConfigError as exc:
            raise StartupError("ratelimit", str(exc)) from exc

    async def _demo_admin(self, store: Store, hasher: PasswordHasher) -> DemoAdmin | None:
        try:
            return await create_demo_admin(self.config.demo, store, hasher)
        except InvalidValue as exc:
            name = self.config.demo.username
            raise StartupError("demo", f"demo.username {name!r}: {exc.why}") from exc

    async def _open_store(self) -> Store:
        cfg = self.config.store
        data_dir = self.config.runtime.data_dir
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            return await open_store(
                cfg.url,
                data_dir=data_dir,
                password=cfg.password.value if cfg.password is not None else None,
                pool_size=cfg.pool_size,
                poll_interval=cfg.poll_interval,
            )
        except Exception as exc:
            raise StartupError(
                "store", f"cannot open the {_engine(cfg.url)} store: {describe(exc)}"
            ) from exc

    async def start(self) -> dict[str, list[Address]]:
        """Build every enabled server, then start them in order; log where each listens."""
        ctx = self.context
        for name, builder in self._builders:
            for server in build_servers(name, builder, ctx):
                self.servers.add(server)
        if self.config.admin.enabled:
            self.servers.add(self._admin_server(ctx))
        bound = await self.servers.start(rollback_grace=self.config.runtime.shutdown_grace)
        for name, addresses in bound.items():
            where = ", ".join(format_address(a) for a in addresses) or "no socket"
            log.info("%s listening on %s", name, where)
        return bound

    def _admin_server(self, ctx: ServerContext) -> AdminServer:
        app = make_app(HealthCheck(ctx.store, self.servers.status), self.metrics)
        # The ban book (gateway bans): the CLI authenticates with the token in the data dir.
        add_ban_routes(app, ctx.policy, admin_token(self.config.runtime.data_dir))
        return AdminServer(self.config.admin.listen, app)

    async def close(self) -> None:
        """Stop the servers (reverse order, within the grace), flush the audit, close the store."""
        failures: list[tuple[str, BaseException]] = []
        try:
            await self.servers.stop(self.config.runtime.shutdown_grace)
        except ShutdownError as exc:
            failures.extend(exc.failures)
        ctx, self._context = self._context, None
        if ctx is not None:
            try:
                await asyncio.wait_for(ctx.audit.close(), AUDIT_FLUSH_TIMEOUT)
            except Exception as exc:
                log.error("the last audit events could not be stored: %s", describe(exc))
                failures.append(("audit", exc))
            ctx.portal.verifier.hasher.close()
            close_policy = getattr(ctx.policy, "close", None)  # LockoutPolicy has storage
            if close_policy is not None:
                try:
                    await close_policy()
                except Exception as exc:
                    failures.append(("ratelimit", exc))
            try:
                await ctx.store.close()
            except Exception as exc:
                failures.append(("store", exc))
        if failures:
            raise ShutdownError(failures)


def _engine(url: str) -> str:
    """The store named without its URL, which may hold a user name or a password."""
    return url.partition(":")[0] or "store"
