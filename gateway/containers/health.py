"""Polls each routed app's ``healthCheckPath`` and records whether it answers.

As Cloudron's health monitor: a GET with the app's Host header; an answer below 400 is
healthy, anything else (4xx/5xx, refused, no answer in time) unhealthy, with the reason
kept for ``gateway app show``. Only a change is written, so a steady app costs no writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import final

import aiohttp

from gateway.config.containers import ContainersConfig
from gateway.containers.routing import Route, RoutingTable
from gateway.runtime.errors import describe
from gateway.store import Store, StoreError

log = logging.getLogger(__name__)

Verdict = tuple[str, str | None]


@final
class HealthMonitor:
    def __init__(self, store: Store, routes: RoutingTable, config: ContainersConfig) -> None:
        self._store = store
        self._routes = routes
        self._config = config
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._last: dict[str, Verdict] = {}

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._config.health_timeout),
            # Health checks go to apps directly, never through an operator's HTTP proxy.
            trust_env=False,
        )
        self._task = asyncio.create_task(self._run(), name="app-health")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        while True:
            try:
                await self.poll()
            except Exception:
                log.exception("health polling failed; trying again in the next round")
            await asyncio.sleep(self._config.health_interval)

    async def poll(self) -> None:
        """Check every routed app once, concurrently."""
        routes = [r for r in self._routes.routes() if r.upstream]
        await asyncio.gather(*(self._check(route) for route in routes))
        gone = set(self._last) - {r.app_id for r in self._routes.routes()}
        for app_id in gone:
            del self._last[app_id]

    async def _check(self, route: Route) -> None:
        verdict = await self.probe(route)
        if self._last.get(route.app_id) == verdict:
            return
        self._last[route.app_id] = verdict
        health, detail = verdict
        if health != "healthy":
            log.info("app %s (%s) is %s: %s", route.app_id, route.host, health, detail)
        self._routes.set_health(route.app_id, health)
        try:
            await self._store.apps.record_runtime(
                route.app_id, health=health, health_detail=detail
            )
        except StoreError as exc:
            log.warning("app %s: could not record its health: %s", route.app_id, exc)
            del self._last[route.app_id]  # try to write it again next time

    async def probe(self, route: Route) -> Verdict:
        assert self._session is not None
        assert route.upstream is not None
        url = route.upstream.rstrip("/") + route.health_check_path
        try:
            async with self._session.get(
                url, headers={"Host": route.host}, allow_redirects=False
            ) as response:
                if response.status < 400:
                    return "healthy", None
                return "unhealthy", f"HTTP {response.status} from {route.health_check_path}"
        except TimeoutError:
            return "unhealthy", f"no answer within {self._config.health_timeout:g}s"
        except aiohttp.ClientError as exc:
            return "unhealthy", describe(exc)
