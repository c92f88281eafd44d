"""Install, configure, restart and uninstall apps: the rules, written once for every caller.

The CLI calls this; an admin API would call the same methods. It only writes the store:
whoever runs apps (``gateway serve`` with ``[containers] enabled``) follows the store's
change feed and starts, replaces or stops them. An install is announced twice: the app row
appears in state ``installing`` (the service leaves it alone), then, once its addons are
provisioned, in state ``installed`` — so the service never races the installer to mint
the app's passwords.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal, final
from urllib.parse import urlsplit

from gateway.config import Config
from gateway.containers.addons.mail import APP_MAILBOX_SUFFIX, default_mailbox, mailbox_name
from gateway.containers.errors import InstallError, SsoFixed
from gateway.containers.files import AppFiles
from gateway.containers.manifest import SSO_ADDONS, Manifest, manifest_of
from gateway.containers.provisioner import AddonProvisioner
from gateway.store import NotFound, Store
from gateway.store.models import AccessRestriction, App, AppLaunch

MAIL_ADDONS = ("sendmail", "recvmail")
Keep = Literal["keep"]
KEEP: Keep = "keep"


@dataclass(frozen=True)
class InstallRequest:
    manifest: Manifest
    location: str
    domain: str
    launch: AppLaunch
    # Only for an external app (launch.backend == "external"): where it already runs.
    upstream: str | None = None
    access: AccessRestriction | None = None
    # None: the manifest decides (ldap or proxyAuth → True); False needs optionalSso.
    sso: bool | None = None
    mailbox: str | None = None


@dataclass(frozen=True)
class Reconfiguration:
    """What ``app configure`` changes; every field left at its default is kept."""

    location: str | None = None
    domain: str | None = None
    manifest: Manifest | None = None
    access: AccessRestriction | Keep | None = KEEP
    launch: AppLaunch | None = None
    upstream: str | None = None
    mailbox: str | None = None
    mail_display_name: str | None = None


@final
class AppInstaller:
    def __init__(self, store: Store, config: Config) -> None:
        self._store = store
        self._config = config
        self._provisioner = AddonProvisioner(store, config)

    async def resolve(self, ref: str) -> App:
        """An app by id, or by its FQDN (``location.domain``)."""
        try:
            return await self._store.apps.get(ref)
        except NotFound:
            wanted = ref.strip().lower().rstrip(".")
            for app in await self._store.apps.list():
                if app.fqdn == wanted:
                    return app
            raise

    async def install(self, request: InstallRequest) -> App:
        manifest = request.manifest
        self._check_launch(request.launch, request.upstream)
        sso = self._sso(manifest, request.sso)
        address = None
        if request.mailbox:
            address = f"{mailbox_name(request.mailbox)}@{request.domain.strip().lower()}"
            await self._check_mail_address_free(address, None)
        app = await self._store.apps.add(
            location=request.location,
            domain=request.domain,
            manifest=manifest.to_json(),
            upstream=self._upstream(request.launch, manifest, request.upstream),
            access=request.access,
            sso=sso,
            app_id=str(uuid.uuid4()),
            launch=request.launch,
        )
        try:
            if address:
                await self._set_mail_address(app, manifest, address)
            await self._provisioner.setup(app, manifest, request.launch)
            state = "external" if request.launch.backend == "external" else "installed"
            await self._store.apps.record_runtime(app.id, state=state, announce=True)
        except BaseException:
            # Nothing half-installed stays behind: the row, its credentials, its files.
            await self._store.apps.remove(app.id)
            AppFiles.of(self._config, app.id).remove()
            raise
        return app

    async def configure(self, app: App, change: Reconfiguration) -> App:
        runtime = await self._store.apps.runtime(app.id)
        if runtime is None:
            raise NotFound("app runtime", app.id)
        manifest = manifest_of(app, self._config.containers)
        launch = runtime.launch
        updates: dict[str, object] = {}
        if change.manifest is not None:
            for addon in SSO_ADDONS:
                if change.manifest.has(addon) and not manifest.has(addon):
                    raise SsoFixed(addon)
            manifest = change.manifest
            updates["manifest"] = manifest.to_json()
        if change.launch or change.upstream is not None or change.manifest is not None:
            launch = change.launch or launch
            given = change.upstream or (app.upstream if launch.backend == "external" else None)
            self._check_launch(launch, given)
            upstream = self._upstream(launch, manifest, given)
            # A bridge container's upstream is its address, recorded when it starts: keep it.
            if upstream is not None or launch.backend != runtime.launch.backend:
                updates["upstream"] = upstream
        if change.location is not None:
            updates["location"] = change.location
        if change.domain is not None:
            updates["domain"] = change.domain
        if change.access != KEEP:
            updates["access"] = change.access
        moved = change.location is not None or change.domain is not None
        if launch.backend != runtime.launch.backend:
            state = "external" if launch.backend == "external" else "installed"
            await self._store.apps.record_runtime(
                app.id, state=state, detail=None, container_id=None
            )
        if launch != runtime.launch:
            await self._store.apps.set_launch(app.id, launch)
        if updates:
            app = await self._store.apps.update(app.id, **updates)  # type: ignore[arg-type]
        if change.mailbox is not None or moved:
            await self._move_mail_address(app, manifest, change.mailbox)
        if change.mail_display_name is not None and manifest.has("sendmail"):
            await self._set_display_name(app, change.mail_display_name)
        await self._provisioner.setup(app, manifest, launch)
        return app

    async def restart(self, app: App) -> int:
        """Ask the service to recreate the app (re-running addon setup, like Cloudron)."""
        return await self._store.apps.request_restart(app.id)

    async def uninstall(self, app: App) -> None:
        """Remove the app with its credentials, mailbox, sessions, app passwords and data.

        A running service stops its container or process when it hears of it.
        """
        for mailbox in await self._store.mail.owned_by(app.id):
            if mailbox.owner_type == "app":
                await self._store.mail.remove_mailbox(mailbox.address)
        await self._store.apps.remove(app.id)
        AppFiles.of(self._config, app.id).remove()

    # -- rules -----------------------------------------------------------------------------

    def _check_launch(self, launch: AppLaunch, upstream: str | None) -> None:
        backend = self._config.containers.backend
        if launch.backend == "external":
            _check_upstream(upstream)
            return
        if launch.backend != backend:
            other = "--image" if backend == "docker" else "--command"
            raise InstallError(
                f"this gateway runs apps with the {backend} backend (containers.backend): "
                f"give {other}, or --upstream for an app that runs elsewhere"
            )
        if launch.backend == "docker" and not launch.image:
            raise InstallError("the docker backend needs --image")
        if launch.backend == "local" and not launch.command:
            raise InstallError("the local backend needs --command")

    def _upstream(self, launch: AppLaunch, manifest: Manifest, given: str | None) -> str | None:
        if launch.backend == "external":
            return given
        if launch.backend == "docker" and self._config.containers.docker_network != "host":
            return None  # known once the container has an address on its bridge
        return f"http://127.0.0.1:{manifest.http_port}"

    @staticmethod
    def _sso(manifest: Manifest, requested: bool | None) -> bool:
        wanted = any(manifest.has(addon) for addon in SSO_ADDONS)
        if requested is None:
            return wanted
        if not requested and wanted and not manifest.optional_sso:
            raise InstallError(
                "this app cannot be installed without the platform's users: its manifest "
                "has no optionalSso"
            )
        return requested

    async def _check_mail_address_free(self, address: str, app_id: str | None) -> None:
        for addon in MAIL_ADDONS:
            owner = await self._store.apps.find_by_credential(addon, "username", address)
            if owner is not None and owner != app_id:
                raise InstallError(f"{address} is already the mail address of app {owner}")
        try:
            mailbox = await self._store.mail.mailbox(address)
        except NotFound:
            return
        if mailbox.owner_id != app_id:
            raise InstallError(f"{address} is already a mailbox of {mailbox.owner_type}")

    async def _set_mail_address(self, app: App, manifest: Manifest, address: str) -> None:
        """Give the mail addons a new username; setup fills in what else they need."""
        for addon in MAIL_ADDONS:
            if manifest.has(addon):
                creds = await self._store.apps.credentials(app.id, addon)
                creds["username"] = address
                await self._store.apps.set_credentials(app.id, addon, creds)

    async def _move_mail_address(self, app: App, manifest: Manifest, mailbox: str | None) -> None:
        if not any(manifest.has(addon) for addon in MAIL_ADDONS):
            return
        current = await self._current_mail_address(app)
        if mailbox is not None:
            local = mailbox_name(mailbox)
        elif current is None or current.partition("@")[0].endswith(APP_MAILBOX_SUFFIX):
            # An app mailbox named by the platform follows the app's location (C.2).
            local = default_mailbox(app, manifest)
        else:
            local = current.partition("@")[0]
        address = f"{local}@{app.domain}"
        if address == current:
            return
        await self._check_mail_address_free(address, app.id)
        for mailbox_row in await self._store.mail.owned_by(app.id):
            if mailbox_row.owner_type == "app":
                await self._store.mail.remove_mailbox(mailbox_row.address)
        await self._set_mail_address(app, manifest, address)

    async def _current_mail_address(self, app: App) -> str | None:
        for addon in MAIL_ADDONS:
            username = (await self._store.apps.credentials(app.id, addon)).get("username")
            if username:
                return username
        return None

    async def _set_display_name(self, app: App, name: str) -> None:
        creds = await self._store.apps.credentials(app.id, "sendmail")
        if not creds:
            return
        creds = {k: v for k, v in creds.items() if k != "display_name"}
        if name.strip():
            creds["display_name"] = name.strip()
        await self._store.apps.set_credentials(app.id, "sendmail", creds)


def _check_upstream(upstream: str | None) -> None:
    if not upstream:
        raise InstallError("an app the platform does not run needs --upstream URL")
    parts = urlsplit(upstream)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InstallError(f"--upstream {upstream!r}: expected http(s)://HOST[:PORT]")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InstallError(f"--upstream {upstream!r}: the port is not a number") from None
