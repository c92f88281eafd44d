"""What an addon is: setup and teardown of the app's credentials, and the env it yields.

Setup runs at install, at configure and before every start, as Cloudron's does (F.1); it
must therefore be idempotent and write nothing when nothing changed — the service follows
the store's change feed, so a needless write would wake it again. Env composition is pure:
everything it reads is gathered into ``EnvFacts`` first, so the CLI's ``app env`` and the
service produce the same variables from the same store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from gateway.config.containers import ContainersConfig
from gateway.containers.files import AppFiles
from gateway.containers.manifest import Manifest
from gateway.store import Store
from gateway.store.models import App


@dataclass(frozen=True)
class AddonSetup:
    store: Store
    config: ContainersConfig
    app: App
    manifest: Manifest
    files: AppFiles
    # Host-network containers, local processes and external apps all reach LDAP from the
    # same source address, so each gets an LDAP address of its own to dial (SPEC, LDAP).
    own_ldap_address: bool


@dataclass(frozen=True)
class EnvFacts:
    app: App
    manifest: Manifest
    config: ContainersConfig
    credentials: Mapping[str, Mapping[str, str]] = field(repr=False)
    # Mail domains that receive mail (recvmail env exists only for those, email lists them).
    receiving_domains: tuple[str, ...] = ()


class Addon(Protocol):
    name: str

    async def setup(self, ctx: AddonSetup) -> None: ...

    async def teardown(self, ctx: AddonSetup) -> None: ...

    def env(self, facts: EnvFacts) -> dict[str, str]:
        """Variables without the manifest-version prefix (``LDAP_URL``, not ``CLOUDRON_…``)."""
        ...


async def replace_credentials(ctx: AddonSetup, addon: str, wanted: dict[str, str]) -> None:
    """Write ``wanted`` only when it differs from what is stored (see the module doc)."""
    current = await ctx.store.apps.credentials(ctx.app.id, addon)
    if current != wanted:
        await ctx.store.apps.set_credentials(ctx.app.id, addon, wanted)
