"""The wall as an aiohttp ``Application``: its ``AppKey``s and ``make_app``.

Everything with a lifetime (the session backend, the access facts, the route table when it
is ours, the upstream connection pool, the expired-session sweeper) is a ``cleanup_ctx``
generator: opened on startup, closed on cleanup, in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, runtime_checkable

from aiohttp import web

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
from proxyauth.wall import ADMISSION, VISIT, LoginWall

log = logging.getLogger(__name__)

CONFIG = web.AppKey("proxyauth.config", ProxyAuthConfig)
SESSIONS = web.AppKey("proxyauth.sessions", SessionStore)
ROUTES = web.AppKey("proxyauth.routes", RouteTable)
GATE = web.AppKey("proxyauth.gate", Gate)
FORMS = web.AppKey("proxyauth.forms", LoginForms)
UPSTREAM = web.AppKey("proxyauth.upstream", UpstreamProxy)
PENDING = web.AppKey("proxyauth.pending", PendingLogins)

# How often sessions past their absolute lifetime are deleted from the store.
SWEEP_EVERY = 600.0


@runtime_checkable
class Managed(Protocol):
    """Something the application opens at startup and closes at cleanup."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...


def _lifetime(thing: Managed) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await thing.open()
        try:
            yield
        finally:
            await thing.close()

    return ctx


async def _sweep_expired(app: web.Application) -> AsyncIterator[None]:
    sessions = app[SESSIONS]

    async def sweep() -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            try:
                if isinstance(sessions, StoreSessions):
                    await sessions.remove_expired()
            except Exception as exc:
                log.warning("could not delete expired sessions: %s", exc)

    task = asyncio.get_running_loop().create_task(sweep(), name="proxyauth-session-sweep")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _proxy(request: web.Request) -> web.StreamResponse:
    return await request.app[UPSTREAM].forward(request, request[VISIT], request[ADMISSION])


def make_app(
    config: ProxyAuthConfig,
    *,
    portal: Portal,
    sessions: SessionStore,
    routes: RouteTable,
    access: AccessCheck,
    audit: AuditLog | None = None,
    metrics: WallMetrics | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> web.Application:
    """The wall for ``routes``; ``sessions`` and ``access`` are opened by the app itself."""
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
    wall = LoginWall(
        routes=routes, gate=gate, forms=forms, forward_auth=forward_auth,
        trusted=TrustedProxies(config.trusted_proxies), pages=pages,
        cookie_name=session_config.cookie_name, metrics=metrics,
    )
    # client_max_size bounds what the wall itself reads (the login and logout forms);
    # proxied bodies are streamed and bounded by max_body_bytes instead.
    app = web.Application(middlewares=[wall], client_max_size=config.form_max_bytes)
    app[CONFIG] = config
    app[SESSIONS] = sessions
    app[ROUTES] = routes
    app[GATE] = gate
    app[FORMS] = forms
    app[UPSTREAM] = upstream
    app[PENDING] = pending
    # A routing table handed in by the container manager lives and dies with it, not us.
    things: list[Any] = [sessions, access, upstream]
    if isinstance(routes, StoreRoutes):
        things.append(routes)
    for thing in things:
        if isinstance(thing, Managed):
            app.cleanup_ctx.append(_lifetime(thing))
    app.cleanup_ctx.append(_sweep_expired)
    app.router.add_route("*", "/{tail:.*}", _proxy)
    return app
