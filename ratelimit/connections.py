"""Caps on concurrent connections per key, for the socket servers.

Connections belong to one process, so the counts are plain in-process integers (no shared
storage): ``acquire(key)`` when a connection is accepted, ``release(key)`` when it closes.
The defaults are Cloudron's firewall caps (``connlimit``): 500 concurrent LDAP connections
per app, 50 per external address on the public mail ports. ``connlimit`` caps concurrency,
not a rate; so does this.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import final

from prometheus_client import CollectorRegistry, Counter, Gauge

LDAP_CONNECTIONS_PER_APP = 500
MAIL_CONNECTIONS_PER_ADDRESS = 50


@final
class ConnectionLimiter:
    """At most ``limit`` open connections per key (an app id, a source network…)."""

    def __init__(
        self, limit: int, *, name: str, registry: CollectorRegistry | None = None
    ) -> None:
        if limit < 1:
            raise ValueError("a connection cap must be at least 1")
        self.limit = limit
        self.name = name
        self._open: dict[str, int] = {}
        registry = registry if registry is not None else CollectorRegistry()
        self._refused = Counter(
            f"gateway_connections_refused_{name}",
            f"Connections refused by the {name} cap.",
            registry=registry,
        )
        self._gauge = Gauge(
            f"gateway_connections_open_{name}",
            f"Connections open under the {name} cap.",
            registry=registry,
        )

    def acquire(self, key: str) -> bool:
        """Count a new connection for ``key``; False (and nothing counted) when at the cap."""
        current = self._open.get(key, 0)
        if current >= self.limit:
            self._refused.inc()
            return False
        self._open[key] = current + 1
        self._gauge.inc()
        return True

    def release(self, key: str) -> None:
        current = self._open.get(key, 0)
        if current <= 0:
            # A release without its acquire is a door's bug; do not go negative over it.
            return
        if current == 1:
            del self._open[key]
        else:
            self._open[key] = current - 1
        self._gauge.dec()

    def count(self, key: str) -> int:
        return self._open.get(key, 0)

    @contextmanager
    def hold(self, key: str) -> Iterator[bool]:
        """``with limiter.hold(key) as admitted:`` — released on exit only if admitted."""
        admitted = self.acquire(key)
        try:
            yield admitted
        finally:
            if admitted:
                self.release(key)
