"""The wall's parts put together: ``make_wall`` answers a ``WallService``.

The wall serves every request through one handler (``LoginWall``) on aiohttp's low-level
server: it has one catch-all route and one decision before it, so an ``Application``'s
router and middleware chain would only add their cost (bench/proxyauth.py: forward-auth
checks went from 4 578/s to 5 184-5 838/s without them). Everything with a lifetime (the
session backend, the access facts, the route table when it is ours, the upstream
connection pool, the expired-session sweeper) is opened by ``WallService.open`` and closed
by ``close``, in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol, final, runtime_checkable

from gateway.audit import AuditLog
from gateway.auth import Portal
from gateway.config.proxyauth import ProxyAuthConfig
from proxyauth.access import AccessCheck
from proxyauth.forward_auth import ForwardAuth
from proxyauth.forwarded import TrustedProxies
from proxyauth.gate import Gate
from proxyauth.login import LoginForms
from proxyauth.metrics import WallMetrics
from proxyauth.pages import Pages
from proxyauth.pending import PendingLogins
from proxyauth.routes import RouteTable, StoreRoutes
from proxyauth.sessions import SECURE_PREFIX, SessionStore, StoreSessions
from proxyauth.throttle import FormThrottle
from proxyauth.upstream import UpstreamProxy
from proxyauth.wall import LoginWall

log = logging.getLogger(__name__)

# How often sessions past their absolute lifetime are deleted from the store.
SWEEP_EVERY = 600.0


@runtime_checkable
class Managed(Protocol):
    """Something the wall opens before it serves and closes after."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...


@final
class WallService:
    """The request handler, what it needs opened, and the body limit of its own forms."""

    def __init__(
        self, handler: LoginWall, sessions: SessionStore, managed: list[Managed],
        client_max_size: int,
    ) -> None:
        self.handler = handler
        self.sessions = sessions
        # client_max_size bounds what the wall itself reads (the login and logout forms);
        # proxied bodies are streamed and bounded by max_body_bytes instead.
        self.client_max_size = client_max_size
        self._managed = managed
        self._opened: list[Managed] = []
        self._sweeper: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Open everything, in order; on a failure, close what was opened and raise (a
        dead Redis fails the start here, naming itself)."""
        try:
            for thing in self._managed:
                await thing.open()
                self._opened.append(thing)
        except BaseException:
            await self.close()
            raise
        self._sweeper = asyncio.get_running_loop().create_task(
            self._sweep_expired(), name="proxyauth-session-sweep"
        )

    async def close(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        while self._opened:
            thing = self._opened.pop()
            try:
                await thing.close()
            except Exception:
                log.exception("could not close %s", type(thing).__name__)

    async def _sweep_expired(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            try:
                if isinstance(self.sessions, StoreSessions):
                    await self.sessions.remove_expired()
            except Exception as exc:
                log.warning("could not delete expired sessions: %s", exc)


def make_wall(
    config: ProxyAuthConfig,
    *,
    portal: Portal,
    sessions: SessionStore,
    routes: RouteTable,
    access: AccessCheck,
    audit: AuditLog | None = None,
    metrics: WallMetrics | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> WallService:
    """The wall for ``routes``; ``sessions`` and ``access`` are opened by the service."""
    pages = Pages(
        title=config.title, secure_cookies=config.secure_cookies,
        template_dir=config.template_dir,
    )
    metrics = metrics if metrics is not None else WallMetrics()
    session_config = sessions.config
    # Both spellings (with and without "__Host-"): an app may plant neither.
    cookie_names = tuple(
        {name: None for base in (session_config.cookie_name, session_config.flow_cookie_name)
         for name in (base, base.removeprefix(SECURE_PREFIX))}
    )
    gate = Gate(portal, sessions, access)
    pending = PendingLogins(config.second_step_timeout, clock=clock)
    forms = LoginForms(
        portal=portal, sessions=sessions, gate=gate, pages=pages, pending=pending,
        throttle=FormThrottle(config.login_rate, config.login_burst, clock=clock),
        form_limit=config.form_max_bytes, audit=audit,
    )
    forward_auth = (
        ForwardAuth(
            path=config.forward_auth_path, gate=gate, routes=routes, pages=pages,
            cookie_name=session_config.cookie_name,
        )
        if config.forward_auth
        else None
    )
    upstream = UpstreamProxy(config, cookie_names)
    handler = LoginWall(
        routes=routes, gate=gate, forms=forms, forward_auth=forward_auth, upstream=upstream,
        trusted=TrustedProxies(config.trusted_proxies), pages=pages,
        cookie_name=session_config.cookie_name, metrics=metrics,
    )
    # A routing table handed in by the container manager lives and dies with it, not us.
    things: list[Any] = [sessions, access, upstream]
    if isinstance(routes, StoreRoutes):
        things.append(routes)
    managed = [thing for thing in things if isinstance(thing, Managed)]
    return WallService(handler, sessions, managed, config.form_max_bytes)
