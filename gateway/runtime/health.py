"""What /healthz answers: each server's state, and whether the store answers a query."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.runtime.errors import describe
from gateway.runtime.group import ServerStatus
from gateway.store import Store

log = logging.getLogger(__name__)

# A probe must answer fast: a store that takes longer than this is as good as down to a
# load balancer, and a hung pool must not hang the health endpoint with it.
STORE_TIMEOUT = 2.0


@dataclass(frozen=True)
class HealthReport:
    healthy: bool
    body: dict[str, Any]


class HealthCheck:
    def __init__(
        self,
        store: Store,
        servers: Callable[[], Mapping[str, ServerStatus]],
        *,
        store_timeout: float = STORE_TIMEOUT,
    ) -> None:
        self._store = store
        self._servers = servers
        self._timeout = store_timeout

    async def report(self) -> HealthReport:
        reachable, problem = await self._probe_store()
        store: dict[str, Any] = {"engine": self._store.dialect, "reachable": reachable}
        if problem:
            store["error"] = problem
        body = {
            "status": "ok" if reachable else "unavailable",
            "store": store,
            "servers": {name: s.as_json() for name, s in self._servers().items()},
        }
        return HealthReport(reachable, body)

    async def _probe_store(self) -> tuple[bool, str | None]:
        try:
            await asyncio.wait_for(self._store.db.fetchrow("SELECT 1 AS ok"), self._timeout)
        except TimeoutError:
            log.warning("health check: the store did not answer within %.1fs", self._timeout)
            return False, "timeout"
        except Exception as exc:
            # Named by type only: a driver's message can carry a DSN.
            log.warning("health check: the store failed: %s", describe(exc))
            return False, type(exc).__name__
        return True, None
