"""What a backend is asked to run for one app, and the fingerprint that says when to redo it.

The fingerprint covers everything that shapes the running app (what to run, its env, limits,
network, restart generation). A backend keeps an app whose fingerprint is unchanged and
recreates one whose fingerprint moved, so reconciling the same app twice is free and a
changed password, image or restart request is never missed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from gateway.config import Config
from gateway.containers.files import AppFiles
from gateway.containers.manifest import Manifest
from gateway.store.models import App, AppRuntime

# Cloudron's floor and default: 256 MiB, swap included (F.2, seed 001).
MIN_MEMORY = 256 * 1024 * 1024


@dataclass(frozen=True)
class LaunchSpec:
    app_id: str
    fqdn: str
    image: str | None
    command: tuple[str, ...]
    env: Mapping[str, str] = field(repr=False)
    memory_limit: int
    http_port: int
    files: AppFiles
    # localstorage: /app/data is the app's data directory; otherwise it is not writable.
    mount_data: bool
    network: str
    restart_policy: str
    generation: int

    @property
    def fingerprint(self) -> str:
        shape = {
            "image": self.image, "command": list(self.command), "env": dict(self.env),
            "memory": self.memory_limit, "data": str(self.files.data) if self.mount_data else None,
            "network": self.network, "restart": self.restart_policy,
            "generation": self.generation,
        }
        # A digest of the env (which holds passwords) is safe to show in a label: the
        # passwords are long random strings, so the digest cannot be reversed.
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()


def launch_spec(
    config: Config, app: App, manifest: Manifest, runtime: AppRuntime, env: Mapping[str, str]
) -> LaunchSpec:
    return LaunchSpec(
        app_id=app.id,
        fqdn=app.fqdn,
        image=runtime.launch.image,
        command=runtime.launch.command,
        env=dict(env),
        memory_limit=max(manifest.memory_limit or 0, MIN_MEMORY),
        http_port=manifest.http_port,
        files=AppFiles.of(config, app.id),
        mount_data=manifest.has("localstorage"),
        network=config.containers.docker_network,
        restart_policy=config.containers.restart_policy,
        generation=runtime.generation,
    )


AppState = Literal["installing", "installed", "running", "crashed", "error", "stopped",
                   "external"]


@dataclass(frozen=True)
class Launched:
    """What a backend reports after making an app run."""

    container_id: str | None
    # The address the app's connections come from, when it has one of its own (a bridge).
    address: str | None = None


class StateListener(Protocol):
    def __call__(
        self, app_id: str, state: AppState, detail: str | None, container_id: str | None = None
    ) -> None: ...


class Backend(Protocol):
    """Runs apps. ``ensure`` is idempotent: it keeps an app whose fingerprint is unchanged."""

    name: Literal["docker", "local"]

    async def open(self) -> None: ...

    async def ensure(self, spec: LaunchSpec) -> Launched: ...

    async def remove(self, app_id: str) -> None: ...

    async def managed(self) -> set[str]:
        """Ids of the apps this backend runs now (to find ones uninstalled meanwhile)."""
        ...

    async def close(self, grace: float) -> None: ...
