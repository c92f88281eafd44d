"""The routing table the proxy reads, and the health monitor polling its upstreams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from gateway.config import Config, RuntimeConfig
from gateway.config.containers import ContainersConfig
from gateway.containers.addons import WallRule
from gateway.containers.health import HealthMonitor
from gateway.containers.installer import AppInstaller, InstallRequest
from gateway.containers.manifest import parse_manifest
from gateway.containers.routing import Route, RoutingTable
from gateway.store import Store
from gateway.store.models import AppLaunch
from tests.services import free_port


def route(app_id: str = "a1", host: str = "wiki.example.com", **extra: object) -> Route:
    fields: dict[str, object] = {
        "host": host, "app_id": app_id, "upstream": "http://127.0.0.1:8000", "wall": None,
        "access": None, "health_check_path": "/", **extra,
    }
    return Route(**fields)  # type: ignore[arg-type]


def test_lookup_takes_a_host_header() -> None:
    table = RoutingTable()
    table.put(route())
    for header in ("wiki.example.com", "WIKI.Example.com", "wiki.example.com:443",
                   "wiki.example.com.", " wiki.example.com "):
        found = table.lookup(header)
        assert found is not None, header
        assert found.app_id == "a1"
    assert table.lookup("example.com") is None
    assert table.lookup("[::1]:443") is None


def test_routes_follow_moves_and_removals() -> None:
    table = RoutingTable()
    table.put(route("a1", "wiki.example.com"))
    table.put(route("a2", "blog.example.com"))
    table.put(route("a1", "docs.example.com"))  # a1 moved
    assert table.lookup("wiki.example.com") is None
    assert table.of_app("a1") == route("a1", "docs.example.com")
    assert [r.host for r in table.routes()] == ["blog.example.com", "docs.example.com"]
    table.set_health("a2", "healthy")
    blog = table.lookup("blog.example.com")
    assert blog is not None
    assert blog.health == "healthy"
    table.keep_only({"a2"})
    assert table.of_app("a1") is None
    table.drop("a2")
    assert table.routes() == []


def test_wall_rule_has_the_manifest_shape() -> None:
    rule = WallRule(path="!/webhooks", basic_auth=True, supports_bearer_auth=True)
    assert rule.as_json() == {"path": "!/webhooks", "basicAuth": True,
                              "supportsBearerAuth": True}


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, list[str]]]:
    """An app: / answers 200, /broken 500; it records the Host header of each request."""
    hosts: list[str] = []

    async def ok(request: web.Request) -> web.Response:
        hosts.append(request.host)
        return web.Response(text="ok")

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500)

    app = web.Application()
    app.router.add_get("/", ok)
    app.router.add_get("/broken", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", hosts
    finally:
        await runner.cleanup()


async def test_health_monitor_records_each_verdict(
    store: Store, tmp_path: Path, upstream: tuple[str, list[str]]
) -> None:
    url, hosts = upstream
    config = Config(runtime=RuntimeConfig(data_dir=tmp_path),
                    containers=ContainersConfig(health_timeout=2.0))
    manifest = parse_manifest({"manifestVersion": 2, "httpPort": 8000, "healthCheckPath": "/"})
    app = await AppInstaller(store, config).install(
        InstallRequest(manifest, "wiki", "example.com", AppLaunch("external"), upstream=url)
    )
    table = RoutingTable()
    monitor = HealthMonitor(store, table, config.containers)
    await monitor.start()
    try:
        verdicts = []
        for upstream_url, path in ((url, "/"), (url, "/broken"),
                                   (f"http://127.0.0.1:{free_port()}", "/")):
            table.put(route(app.id, "wiki.example.com", upstream=upstream_url,
                            health_check_path=path))
            await monitor.poll()
            runtime = await store.apps.runtime(app.id)
            assert runtime is not None
            current = table.of_app(app.id)
            assert current is not None
            assert current.health == runtime.health
            verdicts.append((runtime.health, runtime.health_detail))
    finally:
        await monitor.stop()
    assert verdicts[0] == ("healthy", None)
    assert verdicts[1] == ("unhealthy", "HTTP 500 from /broken")
    assert verdicts[2][0] == "unhealthy"
    assert "Connect" in (verdicts[2][1] or "")
    assert set(hosts) == {"wiki.example.com"}  # the app is asked under its own name
