"""The addons this platform provides, by manifest name."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from gateway.containers.addons.base import Addon, AddonSetup, EnvFacts
from gateway.containers.addons.ldap import LdapAddon
from gateway.containers.addons.localstorage import LocalStorageAddon
from gateway.containers.addons.mail import EmailAddon, RecvmailAddon, SendmailAddon
from gateway.containers.addons.proxyauth import ProxyAuthAddon, WallRule, wall_rule
from gateway.containers.manifest import ADDON_OPTIONS

ADDONS: Mapping[str, Addon] = MappingProxyType({
    addon.name: addon
    for addon in (
        LdapAddon(), SendmailAddon(), RecvmailAddon(), EmailAddon(), ProxyAuthAddon(),
        LocalStorageAddon(),
    )
})
# The manifest validator and the provisioner must agree on what exists.
assert set(ADDONS) == set(ADDON_OPTIONS), "every addon the manifest accepts is provided"

__all__ = ["ADDONS", "Addon", "AddonSetup", "EnvFacts", "WallRule", "wall_rule"]
