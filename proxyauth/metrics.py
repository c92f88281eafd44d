"""The wall's Prometheus collectors, on the process's registry (``gateway.metrics``)."""

from __future__ import annotations

from typing import Any, final

from prometheus_client import CollectorRegistry, Counter


@final
class WallMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        self.decisions = Counter(
            "gateway_proxyauth_decisions",
            "Requests the wall judged, by outcome (session, basic, bearer, open, no_wall, "
            "or the refusal).",
            ["outcome"],
            registry=registry,
        )
        self.forward_auth = Counter(
            "gateway_proxyauth_forward_auth",
            "Forward-auth checks answered, by HTTP status.",
            ["status"],
            registry=registry,
        )
        self._decided: dict[str, Any] = {}
        self._checked: dict[int, Any] = {}

    def decided(self, outcome: str) -> None:
        # Label lookups take a lock and build a tuple: resolve each child once.
        child = self._decided.get(outcome)
        if child is None:
            child = self._decided[outcome] = self.decisions.labels(outcome)
        child.inc()

    def checked(self, status: int) -> None:
        child = self._checked.get(status)
        if child is None:
            child = self._checked[status] = self.forward_auth.labels(str(status))
        child.inc()
