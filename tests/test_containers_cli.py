"""``gateway app`` run as real processes, beside a container manager serving in this one.

The CLI only writes the store; the running service must hear it (SQLite's change feed
across processes), start the app, route it, and later stop it again.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gateway.config import Config, RuntimeConfig, StoreConfig
from gateway.config.containers import ContainersConfig
from gateway.containers.files import AppFiles
from gateway.containers.service import ContainerService
from gateway.store import Store, open_store
from tests.services import free_port

T = TypeVar("T")
WAIT = 30.0
COMMAND_TIMEOUT = 60.0


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Gateway:
    """The operator's ``gateway`` command, on the same store and data dir as the service."""

    cwd: Path
    env: dict[str, str]

    async def __call__(self, *args: str) -> Run:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", *args, cwd=self.cwd, env=self.env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        assert process.returncode is not None
        return Run(process.returncode, out.decode(), err.decode())

    async def ok(self, *args: str) -> Run:
        run = await self(*args)
        assert run.code == 0, f"gateway {' '.join(args)} failed ({run.code}): {run.err}"
        return run


async def eventually(check: Callable[[], Awaitable[T | None]], what: str) -> T:
    deadline = time.monotonic() + WAIT
    while True:
        value = await check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(
        runtime=RuntimeConfig(data_dir=tmp_path / "data"),
        store=StoreConfig(url="sqlite:///gateway.db", poll_interval=0.05),
        containers=ContainersConfig(enabled=True, health_interval=0.2, stop_timeout=2.0),
    )


@pytest.fixture
async def store(config: Config) -> AsyncIterator[Store]:
    opened = await open_store(config.store.url, data_dir=config.runtime.data_dir)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def gateway(tmp_path: Path, config: Config) -> Gateway:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(GATEWAY_RUNTIME_DATA_DIR=str(config.runtime.data_dir),
               GATEWAY_STORE_URL=config.store.url)
    return Gateway(tmp_path, env)


def write_manifest(path: Path, port: int, addons: dict[str, Any]) -> Path:
    path.write_text(json.dumps({
        "id": "io.example.wiki", "title": "Wiki", "version": "1.0.0", "manifestVersion": 2,
        "httpPort": port, "healthCheckPath": "/", "addons": addons,
    }))
    return path


def app_command(port: int) -> str:
    return shlex.join([
        "/bin/sh", "-c",
        "env > env.tmp && mv env.tmp env.txt && "
        f"exec {shlex.quote(sys.executable)} -m http.server --bind 127.0.0.1 {port}",
    ])


async def test_cli_drives_a_running_gateway(
    tmp_path: Path, config: Config, store: Store, gateway: Gateway
) -> None:
    service = ContainerService(config, store)
    await service.start()
    try:
        port = free_port()
        manifest = write_manifest(tmp_path / "CloudronManifest.json", port, {
            "ldap": {}, "sendmail": {}, "proxyAuth": {"path": "!/webhooks"}, "localstorage": {},
        })
        installed = (await gateway.ok(
            "app", "install", "--manifest", str(manifest), "--location", "wiki",
            "--domain", "example.com", "--command", app_command(port), "--json",
        )).json()
        app_id = installed["id"]
        assert installed["state"] == "installed"
        assert installed["mail_address"] == "wiki.app@example.com"

        async def routed() -> Any:
            return service.routes.lookup("wiki.example.com")

        route = await eventually(routed, "the running gateway to route the new app")
        assert route.app_id == app_id
        assert route.wall.as_json() == {"path": "!/webhooks", "basicAuth": False,
                                        "supportsBearerAuth": False}

        # `app env` prints exactly what the app's process got.
        env_file = AppFiles.of(config, app_id).data / "env.txt"

        async def written() -> bool:
            return env_file.exists()

        await eventually(written, "the app to start and write its env")
        inside = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        printed = (await gateway.ok("app", "env", "wiki.example.com", "--json")).json()
        assert {name: inside.get(name) for name in printed} == printed
        lines = (await gateway.ok("app", "env", app_id)).out.splitlines()
        assert dict(line.split("=", 1) for line in lines) == printed

        async def healthy() -> bool:
            runtime = await store.apps.runtime(app_id)
            return runtime is not None and runtime.health == "healthy"

        await eventually(healthy, "the app to be healthy")
        listed = (await gateway.ok("app", "list", "--json")).json()
        assert [(r["fqdn"], r["state"], r["health"]) for r in listed] == [
            ("wiki.example.com", "running", "healthy")
        ]
        table = (await gateway.ok("app", "list")).out
        assert "wiki.example.com" in table
        assert "healthy" in table
        shown = await gateway.ok("app", "show", app_id)
        assert "!/webhooks" in shown.out
        for secret in (printed["CLOUDRON_LDAP_BIND_PASSWORD"],
                       printed["CLOUDRON_MAIL_SMTP_PASSWORD"]):
            assert secret not in shown.out
            assert secret not in (await gateway.ok("app", "show", app_id, "--json")).out

        # Uninstall asks first; without a terminal it wants --yes.
        refused = await gateway("app", "uninstall", app_id)
        assert refused.code == 2
        assert "--yes" in refused.err
        await gateway.ok("app", "uninstall", app_id, "--yes")

        async def unrouted() -> bool:
            return service.routes.lookup("wiki.example.com") is None

        await eventually(unrouted, "the route to go")
        assert (await gateway.ok("app", "list", "--json")).json() == []
    finally:
        await service.stop(2.0)


async def test_cli_refusals_say_why(tmp_path: Path, gateway: Gateway) -> None:
    bad = write_manifest(tmp_path / "bad.json", 8000, {"proxyauth": {}})
    run = await gateway("app", "install", "--manifest", str(bad), "--location", "x",
                        "--domain", "example.com", "--command", "true", "--json")
    assert run.code == 1
    error = json.loads(run.err)
    assert error["kind"] == "invalid_manifest"
    assert "'proxyauth'" in error["error"]
    assert "proxyAuth" in error["error"]

    plain = write_manifest(tmp_path / "plain.json", 8000, {"sendmail": {}})
    run = await gateway("app", "install", "--manifest", str(plain), "--location", "x",
                        "--domain", "example.com")
    assert run.code == 2
    assert "--image, --command or --upstream" in run.err
    run = await gateway("app", "install", "--manifest", str(plain), "--location", "x",
                        "--domain", "example.com", "--image", "example/x:1")
    assert run.code == 1
    assert "local backend" in run.err
    run = await gateway("app", "install", "--manifest", str(plain), "--location", "x",
                        "--domain", "example.com", "--command", "true", "--access", "people:a")
    assert run.code == 2

    app = (await gateway.ok("app", "install", "--manifest", str(plain), "--location", "x",
                            "--domain", "example.com", "--command", "true", "--json")).json()
    with_ldap = write_manifest(tmp_path / "ldap.json", 8000, {"sendmail": {}, "ldap": {}})
    run = await gateway("app", "configure", app["id"], "--manifest", str(with_ldap))
    assert run.code == 1
    assert "the ldap addon cannot be added to an installed app" in run.err
    run = await gateway("app", "configure", app["id"])
    assert run.code == 2
    run = await gateway("app", "show", "nowhere.example.com")
    assert run.code == 1
    assert "nowhere.example.com" in run.err
    run = await gateway("app", "install", "--manifest", str(plain), "--location", "x",
                        "--domain", "example.com", "--command", "true")
    assert run.code == 1
    assert "taken" in run.err
