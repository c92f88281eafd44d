"""Set up and tear down an app's addons: credentials in the store, data on disk.

Runs the addons the manifest declares, in manifest order, and tears down the ones it no
longer declares (an update dropped them). Cloudron runs setup at install and before every
start (F.1); so does this, which is why every addon's setup is idempotent.
"""

from __future__ import annotations

from gateway.config import Config
from gateway.containers.addons import ADDONS, AddonSetup
from gateway.containers.files import AppFiles
from gateway.containers.manifest import Manifest
from gateway.store import Store
from gateway.store.models import App, AppLaunch


def needs_own_ldap_address(launch: AppLaunch, config: Config) -> bool:
    """Whether the app's source address cannot tell it apart from other apps.

    A container on a bridge has an address of its own; a host-network container, a local
    process and an app the platform does not run (most likely beside it, on the host) all
    connect from the host's addresses.
    """
    if launch.backend == "docker":
        return config.containers.docker_network == "host"
    return True


class AddonProvisioner:
    def __init__(self, store: Store, config: Config) -> None:
        self._store = store
        self._config = config

    def _context(self, app: App, manifest: Manifest, launch: AppLaunch) -> AddonSetup:
        return AddonSetup(
            store=self._store,
            config=self._config.containers,
            app=app,
            manifest=manifest,
            files=AppFiles.of(self._config, app.id),
            own_ldap_address=needs_own_ldap_address(launch, self._config),
        )

    async def setup(self, app: App, manifest: Manifest, launch: AppLaunch) -> None:
        ctx = self._context(app, manifest, launch)
        for name in manifest.addons:
            await ADDONS[name].setup(ctx)
        for name in ADDONS:
            if name not in manifest.addons:
                await ADDONS[name].teardown(ctx)
