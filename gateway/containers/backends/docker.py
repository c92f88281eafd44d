"""Apps as Docker containers, through the Engine API (aiodocker).

A container is created the way Cloudron creates app containers (F.2): the app's env and
labels (``appId``, ``fqdn``, ``isCloudronManaged``), a read-only root filesystem with
``/tmp`` and ``/run`` as tmpfs and ``/app/data`` bound to the app's data directory (with
localstorage), the manifest's memory limit, CPU shares and a restart policy. Containers
outlive the gateway (dockerd restarts them): a gateway that starts again adopts the ones
whose fingerprint still matches and replaces the others.

Every container also carries ``gateway.platform``, the id of the store that installed it,
so two platforms sharing one dockerd (or two test runs) never touch each other's apps.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Literal, final

import aiodocker
import aiohttp
from aiodocker.containers import DockerContainer

from gateway.config.containers import ContainersConfig
from gateway.containers.errors import BackendError
from gateway.containers.launch import Launched, LaunchSpec

log = logging.getLogger(__name__)

PLATFORM_LABEL = "gateway.platform"
SPEC_LABEL = "gateway.spec"
# Cloudron gives every app the same CPU weight (half the default), so one busy app cannot
# starve the platform's own services.
CPU_SHARES = 512
TMPFS_OPTIONS = "rw,nosuid,nodev"


@final
class DockerBackend:
    name: Literal["docker", "local"] = "docker"

    def __init__(self, config: ContainersConfig, platform_id: str) -> None:
        self._config = config
        self._platform_id = platform_id
        self._docker: aiodocker.Docker | None = None

    @property
    def docker(self) -> aiodocker.Docker:
        if self._docker is None:
            raise RuntimeError("DockerBackend.open() was not called")
        return self._docker

    async def open(self) -> None:
        self._docker = aiodocker.Docker(url=self._config.docker_host)
        try:
            await self._docker.version()
        except (aiodocker.DockerError, aiohttp.ClientError, OSError) as exc:
            await self._docker.close()
            self._docker = None
            raise BackendError(
                "-", f"Docker at {self._config.docker_host} does not answer: {_why(exc)}"
            ) from exc

    async def close(self, grace: float) -> None:
        # The containers keep running: dockerd owns them, and apps should not go down
        # because the gateway restarts.
        if self._docker is not None:
            await self._docker.close()
            self._docker = None

    async def ensure(self, spec: LaunchSpec) -> Launched:
        try:
            existing = await self._find(spec.app_id)
            if existing is not None:
                if existing["Labels"].get(SPEC_LABEL) == spec.fingerprint:
                    if existing["State"] != "running":
                        await existing.start()
                    return await self._launched(existing.id, spec)
                log.info("app %s changed; replacing its container", spec.app_id)
                await existing.delete(force=True)
            if not spec.image:
                raise BackendError(spec.app_id, "no image to run (install it with --image)")
            await self._ensure_image(spec)
            if spec.mount_data:
                spec.files.create()
            container = await self.docker.containers.create(
                config=self._container_config(spec), name=spec.app_id
            )
            await container.start()
            return await self._launched(container.id, spec)
        except aiodocker.DockerError as exc:
            raise BackendError(spec.app_id, f"Docker refused: {_why(exc)}") from exc

    async def remove(self, app_id: str) -> None:
        try:
            existing = await self._find(app_id)
            if existing is None:
                return
            if existing["State"] == "running":
                await existing.stop(t=int(self._config.stop_timeout))
            await existing.delete(force=True)
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return
            raise BackendError(app_id, f"Docker refused to remove it: {_why(exc)}") from exc

    async def managed(self) -> set[str]:
        containers = await self._list([f"{PLATFORM_LABEL}={self._platform_id}"])
        return {c["Labels"]["appId"] for c in containers if "appId" in c["Labels"]}

    async def container_of(self, app_id: str) -> DockerContainer | None:
        return await self._find(app_id)

    # -- internals -------------------------------------------------------------------------

    async def _list(self, labels: list[str]) -> list[DockerContainer]:
        filters = json.dumps({"label": labels})
        return await self.docker.containers.list(all=True, filters=filters)

    async def _find(self, app_id: str) -> DockerContainer | None:
        found = await self._list([f"{PLATFORM_LABEL}={self._platform_id}", f"appId={app_id}"])
        return found[0] if found else None

    async def _ensure_image(self, spec: LaunchSpec) -> None:
        assert spec.image is not None
        try:
            await self.docker.images.inspect(spec.image)
            return
        except aiodocker.DockerError as exc:
            if exc.status != 404:
                raise
        try:
            await self.docker.images.pull(spec.image)
        except aiodocker.DockerError as exc:
            raise BackendError(
                spec.app_id,
                f"image {spec.image!r} is not on the Docker host and could not be pulled: "
                f"{_why(exc)}",
            ) from exc

    def _container_config(self, spec: LaunchSpec) -> dict[str, Any]:
        host: dict[str, Any] = {
            "ReadonlyRootfs": True,
            "Tmpfs": {"/tmp": TMPFS_OPTIONS, "/run": TMPFS_OPTIONS},  # noqa: S108 - in the container
            # Memory and memory+swap equal: the limit includes swap, as Cloudron documents
            # ("256MB RAM (including swap)"), and the app may use all of it as RAM.
            "Memory": spec.memory_limit,
            "MemorySwap": spec.memory_limit,
            "CpuShares": CPU_SHARES,
            "RestartPolicy": {"Name": spec.restart_policy},
            "NetworkMode": spec.network,
        }
        if spec.mount_data:
            host["Binds"] = [f"{spec.files.data}:/app/data"]
        config: dict[str, Any] = {
            "Image": spec.image,
            "Env": [f"{name}={value}" for name, value in spec.env.items()],
            "Labels": {
                "appId": spec.app_id,
                "fqdn": spec.fqdn,
                "isCloudronManaged": "true",
                "isSubcontainer": "false",
                PLATFORM_LABEL: self._platform_id,
                SPEC_LABEL: spec.fingerprint,
            },
            "HostConfig": host,
        }
        if spec.network != "host":
            # Docker refuses a hostname on the host's network; on a bridge the app id is
            # both (CLOUDRON_APP_HOSTNAME), as Cloudron names its containers.
            config["Hostname"] = spec.app_id
            config["NetworkingConfig"] = {
                "EndpointsConfig": {spec.network: {"Aliases": [spec.app_id]}}
            }
        return config

    async def _launched(self, container_id: str, spec: LaunchSpec) -> Launched:
        info = await self.docker.containers.get(container_id)
        address = None
        if spec.network != "host":
            networks = info["NetworkSettings"].get("Networks") or {}
            address = (networks.get(spec.network) or {}).get("IPAddress") or None
        return Launched(container_id=container_id, address=address)


def _why(exc: BaseException) -> str:
    if isinstance(exc, aiodocker.DockerError):
        return str(exc.message)
    return str(exc) or type(exc).__name__
