"""A small world for the LDAP tests: a store with users, groups, apps and mail, a portal,
and the LDAP server on real sockets (127.0.0.1, port 0), plus what an app would be given.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.audit import AuditLog
from gateway.auth import Portal, build_portal
from gateway.config import AuthConfig, ListenAddress
from gateway.config.ldap import LdapConfig
from gateway.metrics import Metrics
from gateway.store import Store
from gateway.store.models import AccessRestriction, App, User
from ldap.server import LdapServer
from ratelimit import AttemptPolicy, NoLimits

BASE = "dc=cloudron"
USERS_BASE = f"ou=users,{BASE}"
GROUPS_BASE = f"ou=groups,{BASE}"
PASSWORD = "correct horse battery staple"
FAST_AUTH = AuthConfig(argon2_memory_kib=1024, argon2_time_cost=1)

# Each test world gets its own loopback addresses for its apps, so worlds never collide.
_loopback = itertools.count(2)


def next_loopback() -> str:
    n = next(_loopback)
    return f"127.0.{(n // 250) % 250 + 1}.{n % 250 + 2}"


@dataclass
class AppHandle:
    app: App
    password: str
    server: str  # the app's own LDAP endpoint address
    port: int

    @property
    def bind_dn(self) -> str:
        return f"cn={self.app.id},ou=apps,{BASE}"

    @property
    def url(self) -> str:
        return f"ldap://{self.server}:{self.port}"

    def env(self) -> dict[str, str]:
        """The CLOUDRON_LDAP_* environment the container manager gives this app."""
        return {
            "CLOUDRON_LDAP_SERVER": self.server,
            "CLOUDRON_LDAP_HOST": self.server,
            "CLOUDRON_LDAP_PORT": str(self.port),
            "CLOUDRON_LDAP_URL": self.url,
            "CLOUDRON_LDAP_USERS_BASE_DN": USERS_BASE,
            "CLOUDRON_LDAP_GROUPS_BASE_DN": GROUPS_BASE,
            "CLOUDRON_LDAP_BIND_DN": self.bind_dn,
            "CLOUDRON_LDAP_BIND_PASSWORD": self.password,
        }


@dataclass
class World:
    store: Store
    portal: Portal
    audit: AuditLog
    server: LdapServer
    host: str
    port: int
    users: dict[str, User] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)  # name -> id
    apps: dict[str, AppHandle] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"ldap://{self.host}:{self.port}"

    def dn(self, username: str) -> str:
        return f"cn={self.users[username].id},{USERS_BASE}"

    async def add_user(self, username: str, *, display_name: str = "", role: str = "user",
                       email: str | None = None, password: str = PASSWORD,
                       active: bool = True) -> User:
        hashed = await self.portal.verifier.hasher.hash(password)
        user = await self.store.users.add(
            username=username, email=email or f"{username}@example.com",
            password_hash=hashed, display_name=display_name, role=role,  # type: ignore[arg-type]
            fallback_email=f"{username}.backup@example.org", active=active,
        )
        self.users[username] = user
        return user

    async def add_group(self, name: str, *members: str) -> str:
        group = await self.store.groups.add(name)
        for username in members:
            await self.store.groups.add_member(group.id, self.users[username].id)
        self.groups[name] = group.id
        return group.id

    async def add_app(self, location: str, *, access: AccessRestriction | None = None,
                      addons: dict[str, Any] | None = None) -> AppHandle:
        app = await self.store.apps.add(
            location=location, domain="example.com",
            manifest={"addons": addons if addons is not None else {"ldap": {}}},
            access=access,
        )
        password = secrets.token_hex(64)
        server = next_loopback()
        await self.store.apps.set_credentials(app.id, "ldap", {
            "bind_dn": f"cn={app.id},ou=apps,{BASE}", "password": password,
            "server": server, "port": str(self.port),
        })
        handle = AppHandle(app=await self.store.apps.get(app.id), password=password,
                           server=server, port=self.port)
        self.apps[location] = handle
        await self.settled()
        return handle

    async def settled(self) -> None:
        await self.server.settled()


async def start_world(store: Store, tmp_path: Path, *, policy: AttemptPolicy | None = None,
                      **config: Any) -> World:
    audit = AuditLog(store.audit)
    metrics = Metrics()
    portal = await build_portal(FAST_AUTH, store, audit=audit, metrics=metrics,
                                policy=policy or NoLimits())
    settings: dict[str, Any] = {"enabled": True, "listen": [ListenAddress("127.0.0.1", 0)]}
    settings.update(config)
    server = LdapServer(LdapConfig(**settings), store, portal, audit, metrics)
    addresses = await server.start()
    host, port = addresses[0]
    return World(store=store, portal=portal, audit=audit, server=server, host=host, port=port)
