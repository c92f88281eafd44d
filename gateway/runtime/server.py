"""What every server of the suite offers the runtime, and what the runtime hands it.

A server is built from a ``ServerContext`` (config slice, store, portal, metrics…), then
``start()`` binds and answers the addresses it listens on (port 0 gives a free port, so a
test can start any server alone) and ``stop(grace)`` stops accepting, lets in-flight work
finish for up to ``grace`` seconds, and closes (``gateway.runtime.InFlight`` tracks that
work and cuts off what overruns). The runtime bounds each ``stop`` by what is left of the
shared grace, so a server that ignores it is cancelled, not waited for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.audit import AuditLog
from gateway.auth import Portal
from gateway.config import Config
from gateway.metrics import Metrics
from gateway.store import Store
from ratelimit import AttemptPolicy

Address = tuple[str, int]


class Server(Protocol):
    name: str

    async def start(self) -> list[Address]: ...

    async def stop(self, grace: float) -> None: ...


@dataclass
class ServerContext:
    """Everything a server may use; each server takes what it needs in its constructor."""

    config: Config
    store: Store
    portal: Portal
    policy: AttemptPolicy
    audit: AuditLog
    metrics: Metrics
    # Shared objects later parts provide (container manager, routing table, …), by name.
    extras: dict[str, Any] = field(default_factory=dict)
