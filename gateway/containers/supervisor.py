"""Keeps what runs in line with what the store says should run.

At start every installed app is reconciled (adopting containers that still match, replacing
the others, removing containers of apps uninstalled meanwhile); then each announced app
change is: the route is patched, the addons set up again (as Cloudron does before every
start), the environment composed, and the backend asked to make the app run as specified.
The backend keeps an app whose fingerprint did not move, so a change that alters nothing
the app sees (a new access restriction, say) costs no restart.
"""

from __future__ import annotations

import asyncio
import logging
from typing import final

from gateway.config import Config
from gateway.containers.environment import app_environment
from gateway.containers.errors import BackendError, ContainerError
from gateway.containers.feed import ChangeFeed
from gateway.containers.launch import Backend, launch_spec
from gateway.containers.manifest import manifest_of
from gateway.containers.provisioner import AddonProvisioner
from gateway.containers.routing import RoutingTable, route_for
from gateway.containers.state import AppStateRecorder
from gateway.runtime.errors import describe
from gateway.store import NotFound, Store, StoreError

log = logging.getLogger(__name__)
STOP_TIMEOUT = 10.0


@final
class AppSupervisor:
    def __init__(
        self,
        config: Config,
        store: Store,
        backend: Backend,
        routes: RoutingTable,
        recorder: AppStateRecorder,
    ) -> None:
        self._config = config
        self._store = store
        self._backend = backend
        self._routes = routes
        self._recorder = recorder
        self._provisioner = AddonProvisioner(store, config)
        self._feed: ChangeFeed | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Listen before the first full pass, so nothing announced during it is missed.
        self._feed = ChangeFeed(self._store.changes, frozenset({"app", "mail_domain"}))
        await self._store.db.start_change_feed()
        await self.reconcile_all()
        self._task = asyncio.create_task(self._follow(), name="app-supervisor")

    async def stop(self) -> None:
        if self._feed is not None:
            self._feed.close()
        if self._task is not None:
            self._task.cancel()
            # Bounded: a reconcile in flight may have swallowed the cancel (a library turned
            # it into an error); the closed feed then ends the loop at its next turn.
            done, _ = await asyncio.wait({self._task}, timeout=STOP_TIMEOUT)
            if not done:
                log.warning("the app supervisor did not stop within %.0fs", STOP_TIMEOUT)
            self._task = None
        self._feed = None

    async def reconcile_all(self) -> None:
        apps = await self._store.apps.list()
        known = {app.id for app in apps}
        self._routes.keep_only(known)
        for app in apps:
            await self.reconcile(app.id)
        for orphan in await self._backend.managed() - known:
            log.info("app %s is no longer installed; removing what ran it", orphan)
            await self._remove(orphan)

    async def _follow(self) -> None:
        assert self._feed is not None
        feed = self._feed
        while True:
            batch = await feed.next_batch()
            if not batch:
                return  # the feed was closed: stopping
            try:
                # A mail domain starting or stopping to receive changes apps' mail env; a
                # reset means changes may have been missed. Both: look at every app.
                if any(change.kind != "app" for change in batch):
                    await self.reconcile_all()
                    continue
                for change in batch:
                    await self.reconcile(change.key)
            except Exception:
                # The store or the backend failed outside one app's reconcile: the next
                # change (or the store's reset after an outage) brings everything in line.
                log.exception("could not follow app changes; waiting for the next one")

    async def reconcile(self, app_id: str) -> None:
        """Bring one app in line; a failure is recorded on the app, never raised."""
        try:
            await self._reconcile(app_id)
        except (ContainerError, StoreError) as exc:
            log.warning("app %s: %s", app_id, exc)
            await self._recorder.record(app_id, "error", str(exc))
        except Exception as exc:
            log.exception("app %s could not be reconciled", app_id)
            await self._recorder.record(app_id, "error", f"internal error: {describe(exc)}")

    async def _reconcile(self, app_id: str) -> None:
        try:
            app = await self._store.apps.get(app_id)
        except NotFound:
            await self._remove(app_id)
            return
        runtime = await self._store.apps.runtime(app_id)
        if runtime is not None and runtime.state == "installing":
            self._routes.drop(app_id)  # its installer announces when it is provisioned
            return
        manifest = manifest_of(app, self._config.containers)
        self._routes.put(route_for(app, manifest, runtime))
        if runtime is None or runtime.launch.backend != self._backend.name:
            # Not (or no longer) run here: an app configured to run elsewhere leaves nothing
            # behind.
            await self._backend.remove(app_id)
        if runtime is None or runtime.launch.backend == "external":
            # Not run by the platform (or written to the store by other means): routed only.
            return
        if runtime.launch.backend != self._backend.name:
            raise BackendError(
                app_id,
                f"installed for the {runtime.launch.backend} backend, but this gateway runs "
                f"the {self._backend.name} backend (containers.backend)",
            )
        await self._provisioner.setup(app, manifest, runtime.launch)
        env = await app_environment(self._store, self._config, app)
        launched = await self._backend.ensure(
            launch_spec(self._config, app, manifest, runtime, env)
        )
        if launched.address is not None:
            upstream = f"http://{launched.address}:{manifest.http_port}"
            if (app.address, app.upstream) != (launched.address, upstream):
                # Announced: the directory learns which app this source address is.
                app = await self._store.apps.update(
                    app_id, address=launched.address, upstream=upstream
                )
                self._routes.put(route_for(app, manifest, runtime))
        if (runtime.state, runtime.container_id, runtime.detail) != (
            "running", launched.container_id, None
        ):
            await self._store.apps.record_runtime(
                app_id, state="running", detail=None, container_id=launched.container_id
            )

    async def _remove(self, app_id: str) -> None:
        self._routes.drop(app_id)
        try:
            await self._backend.remove(app_id)
        except BackendError as exc:
            log.warning("%s", exc)
