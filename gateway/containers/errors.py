"""What the container manager refuses or fails at, typed so the CLI can say exactly why."""

from __future__ import annotations


class ContainerError(Exception):
    """Base of every container-manager failure."""


class ManifestError(ContainerError):
    """A manifest the platform cannot run: ``field`` is the JSON path, ``why`` the reason."""

    def __init__(self, field: str, why: str) -> None:
        self.field = field
        self.why = why
        super().__init__(f"manifest: {field}: {why}")


class SsoFixed(ContainerError):
    """An addon tied to the install-time sso flag (ldap, proxyAuth) added to an installed app.

    Cloudron refuses this too: what the app's existing local accounts should become is
    unclear, so such an app is reinstalled instead.
    """

    def __init__(self, addon: str) -> None:
        self.addon = addon
        super().__init__(
            f"the {addon} addon cannot be added to an installed app: whether an app uses "
            "the platform's users (its sso flag) is fixed at install; reinstall the app"
        )


class InstallError(ContainerError):
    """An install or configure request that does not fit this platform (a bad option mix)."""


class BackendError(ContainerError):
    """The backend could not create, start, stop or inspect an app."""

    def __init__(self, app_id: str, why: str) -> None:
        self.app_id = app_id
        self.why = why
        super().__init__(f"app {app_id}: {why}")
