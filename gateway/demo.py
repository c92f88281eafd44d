"""The demo admin: so that a first ``gateway serve`` with no config has someone to log in as.

Created only when the user store is empty and ``[demo] enabled``; its generated password is
printed once, framed, straight to stdout (never through the log, which may be shipped
elsewhere) and is not stored anywhere but as a hash. A later start finds users and stays
quiet.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import IO

from gateway.auth import PasswordHasher
from gateway.config import DemoConfig
from gateway.store import Conflict, Store

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
