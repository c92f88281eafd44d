"""The one credential check (``Portal``) and how to build it from config and store."""

from __future__ import annotations

import secrets

from gateway.audit import AuditLog
from gateway.auth.cache import VerifiedCache
from gateway.auth.checkers import UserVerifier
from gateway.auth.credentials import (
    AppPassword,
    AppSecret,
    Credentials,
    LoginContext,
    PasswordTOTP,
    UserPassword,
)
from gateway.auth.errors import (
    AuthUnavailable,
    BadCredentials,
    Inactive,
    Locked,
    LoginFailed,
    NoAccess,
    RateLimited,
    TwoFactorRequired,
    UnhandledCredentials,
    UnknownAccount,
)
from gateway.auth.hashing import HashParams, PasswordHasher
from gateway.auth.identity import AppIdentity, Identity, UserIdentity
from gateway.auth.portal import Portal
from gateway.auth.totp import TotpVerifier
from gateway.config import AuthConfig
from gateway.metrics import Metrics
from gateway.store import Store
from ratelimit import AttemptPolicy, NoLimits

__all__ = [
    "AppIdentity",
    "AppPassword",
    "AppSecret",
    "AuthUnavailable",
    "BadCredentials",
    "Credentials",
    "Identity",
    "Inactive",
    "Locked",
    "LoginContext",
    "LoginFailed",
    "NoAccess",
    "PasswordHasher",
    "PasswordTOTP",
    "Portal",
    "RateLimited",
    "TwoFactorRequired",
    "UnhandledCredentials",
    "UnknownAccount",
    "UserIdentity",
    "UserPassword",
    "build_portal",
    "hasher_for",
    "secret_key",
]

SECRET_KEY_SETTING = "auth.secret_key"


async def secret_key(config: AuthConfig, store: Store) -> bytes:
    """The key for keyed hashes: configured, or generated once and shared via the store."""
    if config.secret_key is not None:
        return config.secret_key.value.encode()
    value = await store.settings.get_or_create(SECRET_KEY_SETTING, secrets.token_hex(32))
    return bytes.fromhex(value)


def hasher_for(config: AuthConfig) -> PasswordHasher:
    return PasswordHasher(
        HashParams(config.argon2_time_cost, config.argon2_memory_kib, config.argon2_parallelism),
        workers=config.hash_workers,
    )


async def build_portal(
    config: AuthConfig,
    store: Store,
    *,
    audit: AuditLog,
    metrics: Metrics,
    policy: AttemptPolicy | None = None,
    hasher: PasswordHasher | None = None,
) -> Portal:
    """Wire the portal; its verified cache follows the store's change feed."""
    key = await secret_key(config, store)
    cache = VerifiedCache(key, ttl=config.cache_ttl, max_entries=config.cache_size)
    store.changes.subscribe(cache.on_change)
    verifier = UserVerifier(
        store,
        hasher or hasher_for(config),
        TotpVerifier(store.users, window=config.totp_window),
        cache,
    )
    portal = Portal(verifier, policy or NoLimits(), audit, metrics, key)
    store.changes.subscribe(portal.on_change)
    return portal
