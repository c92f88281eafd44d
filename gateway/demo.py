"""The demo admin and demo app: so a first ``gateway serve`` has someone and something to use.

Created only when the user store is empty and ``[demo] enabled``; its generated password is
printed once, framed, straight to stdout (never through the log, which may be shipped
elsewhere) and is not stored anywhere but as a hash. A later start finds users and stays
quiet.
"""

from __future__ import annotations

import logging
import secrets
import sys
from dataclasses import dataclass, field
from typing import IO

from gateway.auth import PasswordHasher
from gateway.config import Config, DemoConfig
from gateway.containers.installer import AppInstaller, InstallRequest
from gateway.containers.manifest import parse_manifest
from gateway.store import Conflict, Store
from gateway.store.models import App, AppLaunch

log = logging.getLogger(__name__)

# 18 random bytes → 24 URL-safe characters (144 bits): well above the 16 the demo promises.
PASSWORD_BYTES = 18
DEMO_DOMAIN = "example.com"  # reserved for documentation (RFC 2606): mail to it goes nowhere


@dataclass(frozen=True)
class DemoAdmin:
    username: str
    password: str = field(repr=False)


async def create_demo_admin(
    config: DemoConfig, store: Store, hasher: PasswordHasher
) -> DemoAdmin | None:
    """Create the demo admin if the store has no users yet; answer it, or None."""
    if not config.enabled or await store.users.count() > 0:
        return None
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    try:
        await store.users.add(
            username=config.username,
            email=f"{config.username}@{DEMO_DOMAIN}",
            password_hash=await hasher.hash(password),
            display_name="Demo admin",
            role="admin",
        )
    except Conflict:
        # Another node sharing the store created it first; it printed the password.
        return None
    log.info("created the demo admin %r (password printed once on stdout)", config.username)
    return DemoAdmin(config.username, password)


def announce(admin: DemoAdmin, out: IO[str]) -> None:
    """Print the one-time banner; the only place the password ever appears."""
    rule = "=" * 72
    out.write(
        f"{rule}\n"
        "  Demo admin created (the user store was empty).\n"
        f"    username: {admin.username}\n"
        f"    password: {admin.password}\n"
        "  This password is shown only this once. Change it, or turn the demo off\n"
        "  with [demo] enabled = false, before exposing this gateway.\n"
        f"{rule}\n"
    )
    out.flush()


def demo_manifest(config: DemoConfig) -> dict[str, object]:
    """A manifest using every addon the suite serves to apps."""
    return {
        "id": "io.gateway.demo",
        "title": "Demo app",
        "version": "1.0.0",
        "manifestVersion": 2,
        "httpPort": config.app_port,
        "healthCheckPath": "/",
        "addons": {
            "ldap": {},
            "sendmail": {"supportsDisplayName": True},
            "localstorage": {},
            "proxyAuth": {},
        },
    }


async def install_demo_app(config: Config, store: Store) -> App | None:
    """Install the demo app behind the wall if apps run here and none is installed yet."""
    demo = config.demo
    if not demo.enabled or not demo.app_location or not config.containers.enabled:
        return None
    if await store.apps.list():
        return None
    manifest = parse_manifest(
        demo_manifest(demo), reserved_ports=config.containers.reserved_ports()
    )
    command = (sys.executable, "-m", "gateway.demo_app", "--port", str(demo.app_port))
    try:
        app = await AppInstaller(store, config).install(
            InstallRequest(
                manifest=manifest, location=demo.app_location, domain=demo.app_domain,
                launch=AppLaunch("local", command=command),
            )
        )
    except Conflict:
        return None  # another node sharing the store installed it first
    log.info("installed the demo app at %s behind the login wall", app.fqdn)
    return app
