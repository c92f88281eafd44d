"""The routing table the proxy reads: host → app → upstream address and login-wall rule.

Kept in memory and patched by the container manager as the store announces app changes
(install, configure, uninstall, an address learnt at start), so a CLI in another process
re-routes a running ``gateway serve`` without a restart. The proxy only reads it:
``lookup(host)`` per request is a dict lookup.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import final

from gateway.containers.addons import WallRule, wall_rule
from gateway.containers.manifest import Manifest
from gateway.store.models import AccessRestriction, App, AppRuntime


@dataclass(frozen=True)
class Route:
    host: str
    app_id: str
    # Where requests go (http://HOST:PORT); None until a bridge container has an address.
    upstream: str | None
    # The login wall in front of the app (proxyAuth), or None for no wall.
    wall: WallRule | None
    access: AccessRestriction | None
    health_check_path: str
    health: str = "unknown"
    # The manifest's title, for pages the proxy shows in the app's name (login, 502).
    title: str = ""


def route_for(app: App, manifest: Manifest, runtime: AppRuntime | None) -> Route:
    return Route(
        host=app.fqdn,
        app_id=app.id,
        upstream=app.upstream,
        wall=wall_rule(app, manifest),
        access=app.access,
        health_check_path=manifest.health_check_path,
        health=runtime.health if runtime else "unknown",
        title=manifest.title or "",
    )


@final
class RoutingTable:
    def __init__(self) -> None:
        self._by_host: dict[str, Route] = {}
        self._by_app: dict[str, Route] = {}

    def lookup(self, host: str) -> Route | None:
        """The route for a Host header (any case, with or without port or final dot)."""
        name = host.strip().lower()
        if name.startswith("["):
            return None  # an IPv6 literal names no app
        name = name.rpartition(":")[0] if ":" in name else name
        return self._by_host.get(name.rstrip("."))

    def of_app(self, app_id: str) -> Route | None:
        return self._by_app.get(app_id)

    def routes(self) -> list[Route]:
        return sorted(self._by_app.values(), key=lambda r: r.host)

    def put(self, route: Route) -> None:
        old = self._by_app.get(route.app_id)
        if old is not None and self._by_host.get(old.host) is old:
            del self._by_host[old.host]
        self._by_app[route.app_id] = route
        self._by_host[route.host] = route

    def drop(self, app_id: str) -> None:
        old = self._by_app.pop(app_id, None)
        if old is not None and self._by_host.get(old.host) is old:
            del self._by_host[old.host]

    def keep_only(self, app_ids: set[str]) -> None:
        for app_id in set(self._by_app) - app_ids:
            self.drop(app_id)

    def set_health(self, app_id: str, health: str) -> None:
        route = self._by_app.get(app_id)
        if route is not None and route.health != health:
            self.put(replace(route, health=health))
