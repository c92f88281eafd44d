"""The localstorage addon: a writable /app/data, kept across restarts and updates."""

from __future__ import annotations

from gateway.containers.addons.base import AddonSetup, EnvFacts


class LocalStorageAddon:
    name = "localstorage"

    async def setup(self, ctx: AddonSetup) -> None:
        ctx.files.create()

    async def teardown(self, ctx: AddonSetup) -> None:
        # Data outlives the addon being dropped by an update; uninstall removes it.
        return None

    def env(self, facts: EnvFacts) -> dict[str, str]:
        return {}
