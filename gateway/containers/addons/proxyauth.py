"""The proxyAuth addon: no env, no credentials; a login wall in front of the app (B.1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.containers.addons.base import AddonSetup, EnvFacts
from gateway.containers.manifest import Manifest
from gateway.store.models import App


@dataclass(frozen=True)
class WallRule:
    """What the login wall enforces for one app, as the manifest spelled it.

    ``path``: "" walls everything; "/admin" walls that string prefix; "!/webhooks" walls all
    but that prefix (SPEC, proxyAuth). ``basic_auth`` admits HTTP Basic; ``bearer`` passes
    requests carrying a Bearer token through untouched (``supportsBearerAuth``).
    """

    path: str = ""
    basic_auth: bool = False
    supports_bearer_auth: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "basicAuth": self.basic_auth,
            "supportsBearerAuth": self.supports_bearer_auth,
        }


def wall_rule(app: App, manifest: Manifest) -> WallRule | None:
    """The app's wall, or None. Tied to the install-time sso flag like ldap (F.1): an app
    installed without the platform's users has no wall to log in at."""
    if not app.sso or not manifest.has("proxyAuth"):
        return None
    options = manifest.options("proxyAuth")
    return WallRule(
        path=str(options.get("path") or ""),
        basic_auth=bool(options.get("basicAuth", False)),
        supports_bearer_auth=bool(options.get("supportsBearerAuth", False)),
    )


class ProxyAuthAddon:
    name = "proxyAuth"

    async def setup(self, ctx: AddonSetup) -> None:
        return None

    async def teardown(self, ctx: AddonSetup) -> None:
        return None

    def env(self, facts: EnvFacts) -> dict[str, str]:
        return {}
