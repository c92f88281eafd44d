"""The ldap addon: the app's bind DN and password, and where the directory is (A.6)."""

from __future__ import annotations

import ipaddress
import secrets

from gateway.containers.addons.base import AddonSetup, EnvFacts, replace_credentials
from gateway.containers.errors import ContainerError
from gateway.store import Conflict

USERS_BASE_DN = "ou=users,dc=cloudron"
GROUPS_BASE_DN = "ou=groups,dc=cloudron"
MAILBOXES_BASE_DN = "ou=mailboxes,dc=cloudron"
# 64 random bytes in hex, as Cloudron. Unlike Cloudron's (never checked), ours is checked by
# the directory, so it is kept across restarts: Docker's restart policy brings a container
# back with the env it was created with, and a password changed behind it would lock it out.
PASSWORD_BYTES = 64
# Two installs may race for the same free loopback address; the store's unique index lets
# one win, and the other picks again.
ALLOCATION_ATTEMPTS = 16


def bind_dn(app_id: str) -> str:
    return f"cn={app_id},ou=apps,dc=cloudron"


class LdapAddon:
    name = "ldap"

    async def setup(self, ctx: AddonSetup) -> None:
        if not ctx.app.sso:
            # Installed without the platform's users: no LDAP at all (A.6).
            await self.teardown(ctx)
            return
        current = await ctx.store.apps.credentials(ctx.app.id, self.name)
        wanted = {
            "bind_dn": bind_dn(ctx.app.id),
            "password": current.get("password") or secrets.token_hex(PASSWORD_BYTES),
            "port": str(ctx.config.ldap_port),
        }
        if not ctx.own_ldap_address:
            await replace_credentials(ctx, self.name, wanted)
            return
        server = current.get("server")
        for _ in range(ALLOCATION_ATTEMPTS):
            server = server or await _free_loopback_address(ctx)
            try:
                await replace_credentials(ctx, self.name, {**wanted, "server": server})
                return
            except Conflict:
                server = None
        raise ContainerError(
            f"could not reserve an LDAP loopback address for app {ctx.app.id} "
            f"after {ALLOCATION_ATTEMPTS} attempts (other installs kept taking them)"
        )

    async def teardown(self, ctx: AddonSetup) -> None:
        if await ctx.store.apps.credentials(ctx.app.id, self.name):
            await ctx.store.apps.set_credentials(ctx.app.id, self.name, {})

    def env(self, facts: EnvFacts) -> dict[str, str]:
        creds = facts.credentials.get(self.name)
        if not creds or not facts.app.sso:
            return {}
        server = creds.get("server") or facts.config.ldap_server
        port = creds.get("port") or str(facts.config.ldap_port)
        return {
            "LDAP_SERVER": server,
            "LDAP_HOST": server,
            "LDAP_PORT": port,
            "LDAP_URL": f"ldap://{server}:{port}",
            "LDAP_USERS_BASE_DN": USERS_BASE_DN,
            "LDAP_GROUPS_BASE_DN": GROUPS_BASE_DN,
            "LDAP_BIND_DN": creds["bind_dn"],
            "LDAP_BIND_PASSWORD": creds["password"],
        }


async def _free_loopback_address(ctx: AddonSetup) -> str:
    network = ipaddress.ip_network(ctx.config.ldap_loopback_network, strict=False)
    if not network.is_loopback:
        raise ContainerError(
            f"containers.ldap_loopback_network {network} is not a loopback network"
        )
    taken = await ctx.store.apps.credential_values("ldap", "server")
    for host in network.hosts():
        if str(host) not in taken:
            return str(host)
    raise ContainerError(
        f"containers.ldap_loopback_network {network} has no free address left for app "
        f"{ctx.app.id}; widen it"
    )
