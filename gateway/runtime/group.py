"""The servers of one process, started in order and stopped in reverse (aiohttp's runner
discipline, STYLE.md §2).

A failed start stops what already started, so a half-started gateway never keeps a port.
Stopping shares one grace deadline among all servers, bounds each ``stop()`` by what is left
of it, and gathers every failure instead of stopping at the first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, final

from gateway.metrics import Metrics
from gateway.runtime.errors import ShutdownError, StartupError, describe
from gateway.runtime.server import Address, Server

log = logging.getLogger(__name__)

ServerState = Literal["new", "starting", "serving", "stopping", "stopped", "failed"]

# A stop() that overruns its grace gets this long to react to being cancelled: closing
# sockets after the grace is quick, and the process must still exit in bounded time.
STOP_MARGIN = 1.0


@dataclass
class ServerStatus:
    state: ServerState = "new"
    addresses: list[Address] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {"state": self.state, "listen": [format_address(a) for a in self.addresses]}


def format_address(address: Address) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@final
class ServerGroup:
    def __init__(
        self, *, metrics: Metrics | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._metrics = metrics
        self._clock = clock
        self._servers: list[Server] = []
        self._status: dict[str, ServerStatus] = {}
        self._started: list[Server] = []

    def add(self, server: Server) -> None:
        if server.name in self._status:
            raise ValueError(f"two servers are named {server.name!r}")
        self._servers.append(server)
        self._status[server.name] = ServerStatus()

    @property
    def names(self) -> list[str]:
        return [s.name for s in self._servers]

    def status(self) -> dict[str, ServerStatus]:
        """Each server's state and addresses, in start order (a snapshot for /healthz)."""
        return {name: ServerStatus(s.state, list(s.addresses)) for name, s in self._status.items()}

    async def start(self, *, rollback_grace: float) -> dict[str, list[Address]]:
        """Start every server in order; on a failure, stop the started ones and raise."""
        bound: dict[str, list[Address]] = {}
        for server in self._servers:
            if server in self._started:
                continue
            status = self._status[server.name]
            status.state = "starting"
            try:
                addresses = list(await server.start())
            except Exception as exc:
                status.state = "failed"
                log.error("%s failed to start: %s", server.name, describe(exc))
                await self._roll_back(rollback_grace)
                raise StartupError(server.name, str(exc) or describe(exc)) from exc
            self._started.append(server)
            status.state = "serving"
            status.addresses = addresses
            self._set_up(server.name, 1)
            bound[server.name] = addresses
        return bound

    async def _roll_back(self, grace: float) -> None:
        try:
            await self.stop(grace)
        except ShutdownError as exc:
            # The start failure is what the operator must see; these come second.
            log.error("while undoing a failed start: %s", exc)

    async def stop(self, grace: float) -> None:
        """Stop the started servers in reverse order, sharing ``grace`` seconds among them."""
        deadline = self._clock() + grace
        failures: list[tuple[str, BaseException]] = []
        while self._started:
            server = self._started.pop()
            status = self._status[server.name]
            status.state = "stopping"
            remaining = max(0.0, deadline - self._clock())
            try:
                await asyncio.wait_for(server.stop(remaining), remaining + STOP_MARGIN)
            except TimeoutError as exc:
                log.error(
                    "%s did not stop within its %.1fs grace; cut off", server.name, remaining
                )
                failures.append((server.name, exc))
                status.state = "failed"
            except Exception as exc:
                log.error("%s failed to stop cleanly: %s", server.name, describe(exc))
                failures.append((server.name, exc))
                status.state = "failed"
            else:
                status.state = "stopped"
            self._set_up(server.name, 0)
        if failures:
            raise ShutdownError(failures)

    def _set_up(self, name: str, value: int) -> None:
        if self._metrics is not None:
            self._metrics.up.labels(name).set(value)
