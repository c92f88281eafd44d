"""The container manager as one of the runtime's servers.

``build(ctx)`` is what the runtime imports when ``[containers] enabled = true``. It puts
the routing table in ``ctx.extras["routes"]`` for the proxy (built after this one, so the
table exists when the proxy is built; it fills when this server starts). Starting opens the
backend, reconciles every installed app and follows the store; stopping stops health polls
and the supervisor, then the backend: local processes stop with the gateway, Docker
containers keep running and are adopted by the next start.
"""

from __future__ import annotations

import logging
from typing import final

from gateway.config import Config
from gateway.containers.backends import open_backend
from gateway.containers.health import HealthMonitor
from gateway.containers.launch import Backend
from gateway.containers.routing import RoutingTable
from gateway.containers.state import AppStateRecorder
from gateway.containers.supervisor import AppSupervisor
from gateway.runtime.server import Address, ServerContext
from gateway.store import Store

log = logging.getLogger(__name__)

ROUTES_KEY = "routes"
SERVICE_KEY = "containers"


@final
class ContainerService:
    name = "containers"

    def __init__(self, config: Config, store: Store, routes: RoutingTable | None = None) -> None:
        self.config = config
        self.store = store
        self.routes = routes if routes is not None else RoutingTable()
        self._recorder = AppStateRecorder(store)
        self.backend: Backend | None = None
        self.supervisor: AppSupervisor | None = None
        self.health: HealthMonitor | None = None

    async def start(self) -> list[Address]:
        backend = await open_backend(self.config, self.store, self._recorder)
        self.backend = backend
        try:
            self.supervisor = AppSupervisor(
                self.config, self.store, backend, self.routes, self._recorder
            )
            await self.supervisor.start()
            self.health = HealthMonitor(self.store, self.routes, self.config.containers)
            await self.health.start()
        except BaseException:
            await self.stop(self.config.containers.stop_timeout)
            raise
        log.info("container manager started (%s backend)", backend.name)
        return []  # it listens on nothing; apps are reached through the routing table

    async def stop(self, grace: float) -> None:
        if self.health is not None:
            await self.health.stop()
            self.health = None
        if self.supervisor is not None:
            await self.supervisor.stop()
            self.supervisor = None
        if self.backend is not None:
            await self.backend.close(grace)
            self.backend = None
        await self._recorder.drain()


def build(ctx: ServerContext) -> ContainerService:
    routes = ctx.extras.setdefault(ROUTES_KEY, RoutingTable())
    service = ContainerService(ctx.config, ctx.store, routes)
    ctx.extras[SERVICE_KEY] = service
    return service
