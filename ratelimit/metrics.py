"""Prometheus metrics of the policy, on the registry it is given (never the global one).

Attempts and refusals are counters by door. Active bans are a gauge by door computed when
scraped from the bans this process knows: every ban it started, lifted or saw in its last
listing (``LockoutPolicy`` lists the book at most every ``refresh`` seconds while attempts
come in, so with ``redis://`` each node reports the cluster's bans, a little late).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ratelimit.bans import Ban


class _ActiveBans(Collector):
    def __init__(self, bans: Callable[[], Iterable[Ban]], clock: Callable[[], float]) -> None:
        self._bans = bans
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "gateway_ratelimit_active_bans",
            "Subjects banned now, by the door of the failure that started the ban.",
            labels=["door", "scope"],
        )
        now = self._clock()
        counts: dict[tuple[str, str], int] = {}
        for ban in self._bans():
            if ban.kind == "ban" and ban.active(now):
                key = (ban.door, ban.subject.scope)
                counts[key] = counts.get(key, 0) + 1
        for (door, scope), count in sorted(counts.items()):
            gauge.add_metric([door, scope], count)
        yield gauge


class PolicyMetrics:
    def __init__(
        self,
        registry: CollectorRegistry,
        known_bans: Callable[[], Iterable[Ban]],
        clock: Callable[[], float],
    ) -> None:
        self.registry = registry
        self.attempts = Counter(
            "gateway_ratelimit_attempts",
            "Attempts the lockout policy was asked about, by door.",
            ["door"],
            registry=registry,
        )
        self.refusals = Counter(
            "gateway_ratelimit_refusals",
            "Attempts refused before any password work, by door, scope and kind.",
            ["door", "scope", "kind"],
            registry=registry,
        )
        self.bans = Counter(
            "gateway_ratelimit_bans_started",
            "Bans started by this process, by door and scope.",
            ["door", "scope"],
            registry=registry,
        )
        self.storage_errors = Counter(
            "gateway_ratelimit_storage_errors",
            "Policy calls that met an unreachable storage.",
            registry=registry,
        )
        registry.register(_ActiveBans(known_bans, clock))
