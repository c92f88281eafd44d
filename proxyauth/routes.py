"""Where a Host goes: the app, its upstream, and its wall rule.

``RouteTable`` is all the wall asks of a routing table. The container manager publishes one
in ``ctx.extras["routes"]`` (``gateway.containers.routing``), which ``ContainerRoutes`` reads
through this package's ``Route``; without it (and in tests) ``StoreRoutes`` builds the table
from ``store.apps`` (fqdn → upstream + the manifest's ``proxyAuth`` rule) and keeps it
current from the store's ``app`` change notifications. An app without the proxyAuth addon,
or installed without the platform's users (``sso`` off, as the container manager decides),
is proxied without a wall (its ``/login`` and ``/logout`` are its own).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, final

from gateway.store import NotFound
from gateway.store.apps import Apps
from gateway.store.changes import Change, ChangeHub
from gateway.store.models import App
from proxyauth.rules import WallRule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    app_id: str
    host: str
    upstream: str | None
    wall: WallRule | None
    title: str = ""


class RouteTable(Protocol):
    def lookup(self, host: str) -> Route | None:
        """The route of ``host`` (lower case, no port, no trailing dot), or None."""
        ...


def route_for(app: App) -> Route:
    manifest: dict[str, Any] = app.manifest if isinstance(app.manifest, dict) else {}
    addons = manifest.get("addons")
    addons = addons if isinstance(addons, dict) else {}
    has_wall = app.sso and "proxyAuth" in addons
    wall = WallRule.from_manifest(addons["proxyAuth"]) if has_wall else None
    title = manifest.get("title")
    upstream = app.upstream.rstrip("/") if app.upstream else None
    return Route(
        app_id=app.id, host=app.fqdn.lower().rstrip("."), upstream=upstream, wall=wall,
        title=title if isinstance(title, str) else "",
    )


@final
class StoreRoutes:
    """Routes of the apps in the store, patched on ``app`` changes."""

    def __init__(self, apps: Apps, changes: ChangeHub) -> None:
        self._apps = apps
        self._changes = changes
        self._by_host: dict[str, Route] = {}
        self._host_of: dict[str, str] = {}
        self._dirty: set[str] = set()
        self._reload_all = False
        self._refresher: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()
        self._settled.set()
        self._unsubscribe: Callable[[], None] | None = None

    def lookup(self, host: str) -> Route | None:
        return self._by_host.get(host)

    def __len__(self) -> int:
        return len(self._by_host)

    async def open(self) -> None:
        self._unsubscribe = self._changes.subscribe(self.on_change)
        await self._load_all()

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
            self._refresher = None

    async def settled(self) -> None:
        """Wait until every change heard so far is applied (for tests and the CLI)."""
        await self._settled.wait()

    def on_change(self, change: Change) -> None:
        if change.kind == "app":
            self._dirty.add(change.key)
        elif change.kind == "reset":
            self._reload_all = True
        else:
            return
        self._settled.clear()
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(
                self._refresh(), name="proxyauth-routes"
            )

    async def _refresh(self) -> None:
        try:
            while self._dirty or self._reload_all:
                if self._reload_all:
                    self._reload_all = False
                    self._dirty.clear()
                    await self._load_all()
                    continue
                app_id = self._dirty.pop()
                try:
                    app = await self._apps.get(app_id)
                except NotFound:
                    self._forget(app_id)
                else:
                    self._put(route_for(app))
        except Exception:
            log.exception("could not refresh the routes; reloading them all on the next change")
            self._reload_all = True
        finally:
            # No await since the loop's last test: nothing can have arrived unseen.
            self._settled.set()

    async def _load_all(self) -> None:
        routes = [route_for(app) for app in await self._apps.list()]
        self._by_host = {r.host: r for r in routes}
        self._host_of = {r.app_id: r.host for r in routes}

    def _forget(self, app_id: str) -> None:
        host = self._host_of.pop(app_id, None)
        current = self._by_host.get(host) if host is not None else None
        if current is not None and current.app_id == app_id:
            del self._by_host[current.host]

    def _put(self, route: Route) -> None:
        self._forget(route.app_id)
        self._by_host[route.host] = route
        self._host_of[route.app_id] = route.host


# Routes of the container manager's table already converted; dropped wholesale when full.
_CONVERTED_MAX = 10_000


@final
class ContainerRoutes:
    """The container manager's routing table, read through this package's ``Route``.

    Its routes carry the manifest's wall options (``as_json()``: path, basicAuth,
    supportsBearerAuth); each is converted once and remembered while it is the table's.
    """

    def __init__(self, table: Any) -> None:
        self._table = table
        self._converted: dict[int, tuple[object, Route]] = {}

    def lookup(self, host: str) -> Route | None:
        theirs = self._table.lookup(host)
        if theirs is None or isinstance(theirs, Route):
            return theirs
        known = self._converted.get(id(theirs))
        if known is not None and known[0] is theirs:
            return known[1]
        mine = _convert(theirs)
        if len(self._converted) >= _CONVERTED_MAX:
            self._converted.clear()
        self._converted[id(theirs)] = (theirs, mine)
        return mine


def _convert(route: Any) -> Route:
    wall = getattr(route, "wall", None)
    rule: WallRule | None
    if wall is None:
        rule = None
    elif isinstance(wall, WallRule):
        rule = wall
    else:
        options = wall.as_json() if hasattr(wall, "as_json") else {}
        rule = WallRule.from_manifest(options)
    upstream = getattr(route, "upstream", None)
    return Route(
        app_id=route.app_id, host=str(route.host).lower().rstrip("."),
        upstream=upstream.rstrip("/") if upstream else None, wall=rule,
        title=str(getattr(route, "title", "") or ""),
    )
