"""The backend the config names: Docker containers or local child processes."""

from __future__ import annotations

import secrets

from gateway.config import Config
from gateway.containers.backends.docker import DockerBackend
from gateway.containers.backends.local import LocalProcessBackend
from gateway.containers.launch import Backend, StateListener
from gateway.store import Store

# Settings key of the id that labels this platform's containers (see backends.docker).
PLATFORM_ID_SETTING = "containers.platform_id"


async def platform_id(store: Store) -> str:
    return await store.settings.get_or_create(PLATFORM_ID_SETTING, secrets.token_hex(8))


async def docker_backend(config: Config, store: Store) -> DockerBackend:
    """An opened Docker backend; the caller closes it."""
    backend = DockerBackend(config.containers, await platform_id(store))
    await backend.open()
    return backend


async def open_backend(config: Config, store: Store, on_state: StateListener) -> Backend:
    if config.containers.backend == "docker":
        return await docker_backend(config, store)
    backend = LocalProcessBackend(config.containers, on_state)
    await backend.open()
    return backend


__all__ = ["DockerBackend", "LocalProcessBackend", "docker_backend", "open_backend"]
