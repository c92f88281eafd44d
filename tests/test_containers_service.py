"""The container manager running real apps: a real dockerd, and real child processes.

Each app writes the environment it was started with into its data directory (``env.txt``,
written by the app's own process, so it is what the app got) and serves its health path on
a loopback port. The same install / env / restart / uninstall flow runs on both backends.
Docker tests use a private dockerd (tests/docker_service.py); ``GATEWAY_TEST_NO_DOCKER``
skips them where dockerd cannot run.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shlex
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiodocker
import pytest

from gateway.config import Config, RuntimeConfig, StoreConfig
from gateway.config.containers import ContainersConfig
from gateway.containers.backends import LocalProcessBackend, platform_id
from gateway.containers.backends.docker import PLATFORM_LABEL
from gateway.containers.environment import app_environment
from gateway.containers.files import AppFiles
from gateway.containers.installer import AppInstaller, InstallRequest, Reconfiguration
from gateway.containers.manifest import Manifest, parse_manifest
from gateway.containers.service import ContainerService, build
from gateway.runtime.server import ServerContext
from gateway.store import Store, open_store
from gateway.store.models import AccessRestriction, App, AppLaunch
from tests.docker_service import (
    ENV_DOCKER_HOST,
    ENV_NO_DOCKER,
    DockerDaemon,
    busybox_rootfs,
    find_dockerd,
    find_static_busybox,
    import_image,
    remove_image,
)
from tests.services import free_port

T = TypeVar("T")
WAIT = 30.0
DOMAIN = "example.com"
MIB = 1024 * 1024


# -- a real dockerd (session) ----------------------------------------------------------------


@pytest.fixture(scope="session")
async def docker_url() -> AsyncIterator[str]:
    reason = os.environ.get(ENV_NO_DOCKER)
    if reason:
        pytest.skip(f"{ENV_NO_DOCKER}: {reason}")
    url = os.environ.get(ENV_DOCKER_HOST)
    if url:
        yield url
        return
    dockerd = find_dockerd()
    if dockerd is None:
        pytest.fail(
            "no dockerd: install docker.io (scripts/install --test does), set "
            f"{ENV_DOCKER_HOST} to a running daemon, or {ENV_NO_DOCKER}=<why> to skip"
        )
    if os.geteuid() != 0:
        pytest.fail(f"dockerd needs root: run as root, set {ENV_DOCKER_HOST} or {ENV_NO_DOCKER}")
    daemon = DockerDaemon(dockerd)
    try:
        daemon.start()
        await daemon.ready()
        yield daemon.url
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def rootfs() -> bytes:
    return busybox_rootfs(find_static_busybox())


# -- the platform under test -----------------------------------------------------------------


async def eventually(check: Callable[[], Awaitable[T | None]], what: str,
                     timeout: float = WAIT) -> T:
    """Poll ``check`` until it answers something other than None or False, for at most
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


def manifest(port: int, **extra: Any) -> Manifest:
    data = {
        "id": "io.example.wiki", "title": "Wiki", "version": "1.0.0", "manifestVersion": 2,
        "httpPort": port, "healthCheckPath": "/",
        "addons": {
            "ldap": {}, "sendmail": {}, "localstorage": {},
            "proxyAuth": {"path": "/admin", "basicAuth": True},
        },
        **extra,
    }
    return parse_manifest(data)


@dataclass
class Platform:
    kind: str
    config: Config
    store: Store
    rootfs: bytes = b""
    docker: aiodocker.Docker | None = None
    images: list[str] = field(default_factory=list)
    service: ContainerService | None = None

    @property
    def installer(self) -> AppInstaller:
        return AppInstaller(self.store, self.config)

    async def start(self) -> ContainerService:
        self.service = ContainerService(self.config, self.store)
        await self.service.start()
        return self.service

    async def stop(self) -> None:
        if self.service is not None:
            await self.service.stop(5.0)
            self.service = None

    async def launch(self, port: int) -> AppLaunch:
        """An app that writes its env to its data dir, then serves / on ``port``."""
        if self.kind == "docker":
            assert self.docker is not None
            image = f"gateway-test/app:{port}"
            script = (
                "env > /app/data/env.tmp && mv /app/data/env.tmp /app/data/env.txt && "
                "mkdir -p /tmp/www && echo ok > /tmp/www/index.html && "
                f"exec httpd -f -p 127.0.0.1:{port} -h /tmp/www"
            )
            await import_image(self.docker, self.rootfs, image, ["/bin/sh", "-c", script])
            self.images.append(image)
            return AppLaunch("docker", image=image)
        script = (
            "env > env.tmp && mv env.tmp env.txt && "
            f"exec {shlex.quote(sys.executable)} -m http.server --bind 127.0.0.1 {port}"
        )
        return AppLaunch("local", command=("/bin/sh", "-c", script))

    async def install(self, location: str = "wiki", **manifest_extra: Any) -> App:
        port = free_port()
        return await self.installer.install(
            InstallRequest(
                manifest=manifest(port, **manifest_extra), location=location, domain=DOMAIN,
                launch=await self.launch(port),
            )
        )

    def env_file(self, app: App) -> Path:
        return AppFiles.of(self.config, app.id).data / "env.txt"

    async def env_inside(self, app: App) -> dict[str, str]:
        """The environment the app's own process wrote, once it has written it."""
        path = self.env_file(app)

        async def written() -> dict[str, str] | None:
            if not path.exists():
                return None
            return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)

        return await eventually(written, f"{app.fqdn} to write its environment")

    async def running(self, app: App) -> str | None:
        """The id of what runs the app now (container id, or pid), or None."""
        if self.kind == "docker":
            assert self.docker is not None
            labels = [f"appId={app.id}", f"{PLATFORM_LABEL}={await platform_id(self.store)}"]
            found = await self.docker.containers.list(
                all=True, filters={"label": labels}
            )
            return found[0].id if found else None
        assert self.service is not None
        backend = self.service.backend
        assert isinstance(backend, LocalProcessBackend)
        process = backend.process(app.id)
        return str(process.pid) if process and process.pid else None

    async def state(self, app: App, state: str) -> bool:
        runtime = await self.store.apps.runtime(app.id)
        return runtime is not None and runtime.state == state

    async def healthy(self, app: App) -> bool:
        runtime = await self.store.apps.runtime(app.id)
        return runtime is not None and runtime.health == "healthy"


def platform_config(tmp_path: Path, kind: str, docker_url: str | None, **extra: Any) -> Config:
    return Config(
        runtime=RuntimeConfig(data_dir=tmp_path / "data"),
        store=StoreConfig(url=f"sqlite:///{tmp_path / 'store.db'}"),
        containers=ContainersConfig(
            enabled=True, backend=kind,
            docker_host=docker_url or "unix:///nonexistent",
            health_interval=0.2, health_timeout=2.0, stop_timeout=2.0, **extra,
        ),
    )


@dataclass(frozen=True)
class Engine:
    kind: str
    docker_url: str | None = None
    rootfs: bytes = b""


async def make_platform(tmp_path: Path, engine: Engine, **extra: Any) -> AsyncIterator[Platform]:
    kind, docker_url, rootfs = engine.kind, engine.docker_url, engine.rootfs
    docker = aiodocker.Docker(url=docker_url) if docker_url else None
    config = platform_config(tmp_path, kind, docker_url, **extra)
    store = await open_store(config.store.url, data_dir=tmp_path)
    platform = Platform(kind, config, store, rootfs, docker)
    try:
        yield platform
    finally:
        await platform.stop()
        # Containers outlive the service: take this test's away from the shared dockerd.
        if docker is not None:
            for container in await docker.containers.list(
                all=True, filters={"label": [f"{PLATFORM_LABEL}={await platform_id(store)}"]}
            ):
                await container.delete(force=True)
            for image in platform.images:
                await remove_image(docker, image)
            await docker.close()
        await store.close()


@pytest.fixture
def docker_engine(docker_url: str, rootfs: bytes) -> Engine:
    return Engine("docker", docker_url, rootfs)


@pytest.fixture(params=["local", "docker"])
def engine(request: pytest.FixtureRequest) -> Engine:
    # Synchronous, so it may ask for the (async, session) dockerd only when it is needed.
    if request.param == "docker":
        docker_engine: Engine = request.getfixturevalue("docker_engine")
        return docker_engine
    return Engine("local")


@pytest.fixture
async def platform(tmp_path: Path, engine: Engine) -> AsyncIterator[Platform]:
    async for made in make_platform(tmp_path, engine):
        yield made


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[Platform]:
    async for made in make_platform(tmp_path, Engine("local")):
        yield made


@pytest.fixture
async def docker(tmp_path: Path, docker_engine: Engine) -> AsyncIterator[Platform]:
    async for made in make_platform(tmp_path, docker_engine):
        yield made


# -- both backends ---------------------------------------------------------------------------


async def test_install_env_restart_uninstall(platform: Platform) -> None:
    service = await platform.start()
    app = await platform.install()

    # The app's own process got exactly what `gateway app env` shows.
    inside = await platform.env_inside(app)
    expected = await app_environment(platform.store, platform.config, app)
    assert {name: inside.get(name) for name in expected} == expected
    assert not [name for name in inside if name.startswith("GATEWAY_")]
    creds = await platform.store.apps.all_credentials(app.id)
    assert inside["CLOUDRON_LDAP_BIND_DN"] == f"cn={app.id},ou=apps,dc=cloudron"
    assert inside["CLOUDRON_LDAP_BIND_PASSWORD"] == creds["ldap"]["password"]
    assert inside["CLOUDRON_LDAP_SERVER"] == creds["ldap"]["server"]
    assert inside["CLOUDRON_LDAP_SERVER"].startswith("127.0.1.")
    assert inside["CLOUDRON_MAIL_SMTP_USERNAME"] == "wiki.app@example.com"
    smtp_password = inside["CLOUDRON_MAIL_SMTP_PASSWORD"]
    assert smtp_password == creds["sendmail"]["password"]
    assert len(smtp_password) == 48
    assert int(smtp_password, 16) >= 0
    assert inside["CLOUDRON_APP_ORIGIN"] == "https://wiki.example.com"

    # Routed, walled, healthy, running.
    route = service.routes.lookup("WIKI.example.com:443")
    assert route is not None
    assert route.app_id == app.id
    assert route.upstream == app.upstream
    assert route.wall is not None
    assert route.wall.as_json() == {"path": "/admin", "basicAuth": True,
                                    "supportsBearerAuth": False}
    await eventually(lambda: platform.healthy(app), "the app to be healthy")
    assert await platform.state(app, "running")
    first = await platform.running(app)
    assert first is not None

    # Restart: a new container/process, set up again, the same mail password.
    platform.env_file(app).unlink()
    await platform.installer.restart(app)
    again = await platform.env_inside(app)
    assert again["CLOUDRON_MAIL_SMTP_PASSWORD"] == smtp_password
    assert again["CLOUDRON_LDAP_BIND_PASSWORD"] == inside["CLOUDRON_LDAP_BIND_PASSWORD"]
    second = await platform.running(app)
    assert second not in (None, first)

    # Uninstall: the container/process, credentials, sessions, app passwords and data go.
    user = await platform.store.users.add(
        username="alice", email="alice@example.com", password_hash="x"
    )
    await platform.store.sessions.put("cookie", user_id=user.id, app_id=app.id, expires_at=2e9)
    await platform.store.app_passwords.add(user.id, "phone", app.id, "hash")
    await platform.installer.uninstall(app)

    async def gone() -> bool:
        return await platform.running(app) is None

    await eventually(gone, "the app to stop running")
    assert await platform.store.apps.all_credentials(app.id) == {}
    assert await platform.store.apps.runtime(app.id) is None
    assert await platform.store.sessions.get("cookie") is None
    assert await platform.store.app_passwords.of_user(user.id) == []
    assert not AppFiles.of(platform.config, app.id).root.exists()

    async def unrouted() -> bool:
        return service.routes.lookup("wiki.example.com") is None

    await eventually(unrouted, "the route to go")


async def test_gateway_restart_adopts_or_restarts_apps(platform: Platform) -> None:
    await platform.start()
    app = await platform.install()
    before = await platform.env_inside(app)
    first = await eventually(lambda: platform.running(app), "the app to run")
    await platform.stop()

    platform.env_file(app).unlink()
    await platform.start()
    if platform.kind == "docker":
        # dockerd kept the container; the gateway adopted it rather than replace it.
        assert await platform.running(app) == first
        assert not platform.env_file(app).exists()
    else:
        # Children stop with the gateway; the next one starts them with the same env.
        assert await platform.env_inside(app) == before
        assert await platform.running(app) != first
    await eventually(lambda: platform.healthy(app), "the app to be healthy again")


async def test_launch_failure_is_recorded_on_the_app(platform: Platform) -> None:
    await platform.start()
    port = free_port()
    launch = (
        AppLaunch("docker", image="gateway-test/missing:1") if platform.kind == "docker"
        else AppLaunch("local", command=("/nonexistent/app-binary",))
    )
    app = await platform.installer.install(
        InstallRequest(manifest(port), location="broken", domain=DOMAIN, launch=launch)
    )

    async def failed() -> str | None:
        runtime = await platform.store.apps.runtime(app.id)
        return runtime.detail if runtime and runtime.state == "error" else None

    detail = await eventually(failed, "the failure to be recorded")
    assert ("gateway-test/missing:1" if platform.kind == "docker" else "app-binary") in detail
    # Still routed: the proxy answers for the app while it is down.
    assert platform.service is not None
    assert platform.service.routes.lookup("broken.example.com") is not None


# -- local processes -------------------------------------------------------------------------


async def test_local_process_is_restarted_after_a_crash(local: Platform) -> None:
    await local.start()
    app = await local.install()
    first = await eventually(lambda: local.running(app), "the app to run")
    await local.env_inside(app)
    local.env_file(app).unlink()
    os.kill(int(first), signal.SIGKILL)

    async def restarted() -> str | None:
        pid = await local.running(app)
        return pid if pid not in (None, first) else None

    await eventually(restarted, "the backend to start the app again")
    await local.env_inside(app)
    runtime = await local.store.apps.runtime(app.id)
    assert runtime is not None
    assert runtime.state == "running"
    assert runtime.container_id == f"pid:{await local.running(app)}"
    log = AppFiles.of(local.config, app.id).log
    assert log.exists()


async def test_configure_restarts_only_when_the_app_would_see_it(local: Platform) -> None:
    await local.start()
    app = await local.install(addons={"sendmail": {"supportsDisplayName": True},
                                      "localstorage": {}})
    inside = await local.env_inside(app)
    assert inside["CLOUDRON_MAIL_FROM_DISPLAY_NAME"] == "Wiki"
    first = await local.running(app)

    # Access is enforced by the doors, not seen by the app: no restart.
    service = local.service
    assert service is not None
    await local.installer.configure(app, Reconfiguration(access=AccessRestriction()))

    async def access_routed() -> bool:
        route = service.routes.lookup("wiki.example.com")
        return route is not None and route.access == AccessRestriction()

    await eventually(access_routed, "the new access rule to reach the routing table")
    assert await local.running(app) == first

    # A new display name and mailbox are in the env: the app is started again with them.
    local.env_file(app).unlink()
    await local.installer.configure(
        app, Reconfiguration(mail_display_name="Team Wiki", mailbox="team")
    )
    again = await local.env_inside(app)
    assert again["CLOUDRON_MAIL_FROM_DISPLAY_NAME"] == "Team Wiki"
    assert again["CLOUDRON_MAIL_SMTP_USERNAME"] == "team@example.com"
    assert again["CLOUDRON_MAIL_SMTP_PASSWORD"] == inside["CLOUDRON_MAIL_SMTP_PASSWORD"]
    assert await local.running(app) != first

    # Now it runs elsewhere: the process goes, the route follows the new upstream.
    await local.installer.configure(
        app, Reconfiguration(launch=AppLaunch("external"), upstream="http://127.0.0.1:9")
    )

    async def moved_out() -> bool:
        route = service.routes.lookup("wiki.example.com")
        return (await local.running(app) is None and route is not None
                and route.upstream == "http://127.0.0.1:9")

    await eventually(moved_out, "the process to stop and the route to move")
    assert await local.state(app, "external")


async def test_build_publishes_the_routing_table(local: Platform) -> None:
    ctx = ServerContext(
        config=local.config, store=local.store, portal=None, policy=None,
        audit=None, metrics=None,
    )
    server = build(ctx)
    assert server.name == "containers"
    assert ctx.extras["routes"] is server.routes
    app = await local.install()
    # An app another part wrote straight into the store runs elsewhere: routed only.
    bare = await local.store.apps.add(
        location="bare", domain=DOMAIN, upstream="http://127.0.0.1:9",
        manifest={"manifestVersion": 2, "httpPort": 9, "healthCheckPath": "/"},
    )
    assert await server.start() == []
    try:
        route = server.routes.lookup(app.fqdn)
        assert route is not None
        assert route.upstream == app.upstream
        assert route.wall is not None
        assert route.title == "Wiki"
        other = server.routes.lookup(bare.fqdn)
        assert other is not None
        assert other.upstream == "http://127.0.0.1:9"
    finally:
        await server.stop(2.0)
    # Local apps stop with the gateway, and say so.
    await eventually(lambda: local.state(app, "stopped"), "the app to be recorded as stopped")


# -- Docker only -----------------------------------------------------------------------------


async def test_docker_container_is_shaped_like_cloudrons(docker: Platform) -> None:
    await docker.start()
    app = await docker.install(memoryLimit=300 * MIB)
    await docker.env_inside(app)
    assert docker.docker is not None
    container = await docker.docker.containers.get(app.id)
    info = container._container
    labels = info["Config"]["Labels"]
    assert labels["appId"] == app.id
    assert labels["fqdn"] == "wiki.example.com"
    assert labels["isCloudronManaged"] == "true"
    host = info["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert set(host["Tmpfs"]) == {"/tmp", "/run"}
    assert host["Memory"] == 300 * MIB
    assert host["RestartPolicy"]["Name"] == "always"
    assert host["NetworkMode"] == "host"
    assert host["Binds"] == [f"{AppFiles.of(docker.config, app.id).data}:/app/data"]

    for writable in ("/tmp", "/run", "/app/data"):
        code, _ = await exec_in(container, "/bin/sh", "-c", f"echo x > {writable}/probe")
        assert code == 0, writable
    for read_only in ("/etc", "/", "/app"):
        code, output = await exec_in(container, "/bin/sh", "-c", f"echo x > {read_only}/probe")
        assert code != 0, read_only
        assert "Read-only file system" in output

    # `docker exec env` inside the running container shows the same environment.
    code, output = await exec_in(container, "env")
    assert code == 0
    seen = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    expected = await app_environment(docker.store, docker.config, app)
    assert {name: seen.get(name) for name in expected} == expected


async def exec_in(container: Any, *command: str) -> tuple[int, str]:
    """``docker exec``: the command's exit code and its output (stdout and stderr)."""
    execution = await container.exec(list(command))
    chunks: list[bytes] = []
    async with execution.start(detach=False) as stream:
        while (message := await stream.read_out()) is not None:
            chunks.append(message.data)

    async def exit_code() -> int | None:
        info = await execution.inspect()
        return None if info["Running"] else int(info["ExitCode"])

    code = await eventually(exit_code, f"{command[0]} to finish in the container")
    return code, b"".join(chunks).decode(errors="replace")


async def test_docker_uninstalled_while_down_is_removed_at_start(docker: Platform) -> None:
    await docker.start()
    app = await docker.install()
    await eventually(lambda: docker.running(app), "the container to run")
    await docker.stop()
    await docker.installer.uninstall(app)  # no gateway running: the container stays
    assert await docker.running(app) is not None
    await docker.start()
    assert await docker.running(app) is None


async def test_docker_cli_uninstall_removes_the_container_itself(docker: Platform) -> None:
    """With no gateway serving, `gateway app uninstall` stops the container itself:
    dockerd would otherwise keep restarting it."""
    await docker.start()
    app = await docker.install()
    await eventually(lambda: docker.running(app), "the container to run")
    await docker.stop()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        GATEWAY_RUNTIME_DATA_DIR=str(docker.config.runtime.data_dir),
        GATEWAY_STORE_URL=docker.config.store.url,
        GATEWAY_CONTAINERS_BACKEND="docker",
        GATEWAY_CONTAINERS_DOCKER_HOST=docker.config.containers.docker_host,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "app", "uninstall", app.id, "--yes", "--json",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), WAIT)
    assert process.returncode == 0, err.decode()
    assert json.loads(out)["container_removed"] is True
    assert await docker.running(app) is None


@pytest.fixture
async def bridge_network(docker_url: str) -> AsyncIterator[str]:
    """A user-defined bridge network. Internal: no route out, so dockerd needs no NAT rule
    (it runs with --iptables=false). Removing it removes its Linux bridge."""
    client = aiodocker.Docker(url=docker_url)
    name = f"gw-test-{secrets.token_hex(4)}"
    network = await client.networks.create({"Name": name, "Driver": "bridge", "Internal": True})
    try:
        yield name
    finally:
        await network.delete()
        await client.close()


@pytest.fixture
async def bridged(
    tmp_path: Path, docker_engine: Engine, bridge_network: str
) -> AsyncIterator[Platform]:
    async for made in make_platform(
        tmp_path, docker_engine, docker_network=bridge_network, ldap_server="172.31.0.1"
    ):
        yield made


async def test_docker_bridge_container_address_is_recorded(
    bridged: Platform, bridge_network: str
) -> None:
    await bridged.start()
    app = await bridged.install()

    async def addressed() -> App | None:
        current = await bridged.store.apps.get(app.id)
        return current if current.address else None

    current = await eventually(addressed, "the container's address to be recorded")
    assert bridged.docker is not None
    info = await bridged.docker.containers.get(app.id)
    ip = info["NetworkSettings"]["Networks"][bridge_network]["IPAddress"]
    assert current.address == ip
    assert current.upstream == f"http://{ip}:{current.manifest['httpPort']}"
    assert bridged.service is not None
    route = bridged.service.routes.lookup(app.fqdn)
    assert route is not None
    assert route.upstream == current.upstream
    # Its source address identifies it: no LDAP address of its own.
    assert "server" not in await bridged.store.apps.credentials(app.id, "ldap")
    env = await bridged.env_inside(app)
    assert env["CLOUDRON_LDAP_SERVER"] == "172.31.0.1"
    assert env["HOSTNAME"] == app.id
