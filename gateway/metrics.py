"""Prometheus metrics of one gateway process, on a registry of its own.

A registry per ``Metrics`` (not the global default) lets several servers live in one test
process; every door registers its collectors on ``metrics.registry``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.logins = Counter(
            "gateway_logins",
            "Credential checks by door and result.",
            ["door", "result"],
            registry=self.registry,
        )
        self.login_seconds = Histogram(
            "gateway_login_seconds",
            "Time to answer a credential check.",
            ["door"],
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.cache_hits = Counter(
            "gateway_login_cache_hits",
            "Credential checks answered from the verified cache.",
            registry=self.registry,
        )
        self.up = Gauge(
            "gateway_server_up", "1 while a server is serving.", ["server"], registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
