"""The admin endpoint: ``GET /healthz`` and ``GET /metrics``, a Server like any other.

An aiohttp ``AppRunner`` + ``TCPSite`` on the shared loop (never ``web.run_app``, which wants
the loop and the signals for itself). Keep it on a private address: it is not authenticated.
"""

from __future__ import annotations

from typing import final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.config import ListenAddress
from gateway.metrics import Metrics
from gateway.runtime.errors import CannotListen, socket_error
from gateway.runtime.health import HealthCheck
from gateway.runtime.server import Address

HEALTH = web.AppKey("health", HealthCheck)
METRICS = web.AppKey("metrics", Metrics)


async def healthz(request: web.Request) -> web.Response:
    report = await request.app[HEALTH].report()
    return web.json_response(report.body, status=200 if report.healthy else 503)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def make_app(health: HealthCheck, registry: Metrics) -> web.Application:
    app = web.Application()
    app[HEALTH] = health
    app[METRICS] = registry
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


@final
class AdminServer:
    name = "admin"

    def __init__(self, listen: ListenAddress, app: web.Application) -> None:
        """``app`` comes from ``make_app``; other parts may add their routes to it first."""
        self._listen = listen
        self._app = app
        self._runner: web.AppRunner | None = None

    async def start(self) -> list[Address]:
        # No access log: probes hit /healthz every few seconds and would drown the rest.
        runner = web.AppRunner(self._app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._listen.host, self._listen.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise CannotListen(str(self._listen), socket_error(exc)) from exc
        self._runner = runner
        return [(a[0], a[1]) for a in runner.addresses]

    async def stop(self, grace: float) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        # Requests here are short; the runner waits for them up to the grace. aiohttp takes
        # the timeout only at construction, before the grace is known (it sets it so itself).
        runner._shutdown_timeout = grace
        await runner.cleanup()
