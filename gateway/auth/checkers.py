"""One checker per credential type; each answers an identity or raises a LoginFailed.

Checkers verify; they neither rate-limit nor audit (the portal does both, for all of them).
"""

from __future__ import annotations

import hmac
import logging

from gateway.auth.access import may_use
from gateway.auth.cache import VerifiedCache
from gateway.auth.credentials import AppPassword, AppSecret, PasswordTOTP, UserPassword
from gateway.auth.errors import (
    BadCredentials,
    Inactive,
    NoAccess,
    TwoFactorRequired,
    UnknownAccount,
)
from gateway.auth.hashing import PasswordHasher
from gateway.auth.identity import AppIdentity, Method, UserIdentity
from gateway.auth.totp import DIGITS, TotpVerifier
from gateway.store import NotFound, Store
from gateway.store.models import User

log = logging.getLogger(__name__)


class UserVerifier:
    """What every user-credential checker shares: lookup, hashes, access, identity."""

    def __init__(
        self, store: Store, hasher: PasswordHasher, totp: TotpVerifier, cache: VerifiedCache
    ) -> None:
        self.store = store
        self.hasher = hasher
        self.totp = totp
        self.cache = cache

    async def user(self, login: str) -> User:
        user = await self.store.users.find(login)
        if user is None or user.username is None:
            # Same cost as a wrong password, so timing does not reveal who exists.
            await self.hasher.verify("decoy", None)
            raise UnknownAccount()
        return user

    async def main_password(self, user: User, password: str) -> bool:
        if not await self.hasher.verify(password, user.password_hash):
            return False
        if self.hasher.needs_rehash(user.password_hash):
            new_hash = await self.hasher.hash(password)
            if await self.store.users.rehash(user.id, user.password_hash, new_hash):
                log.info("upgraded the password hash of %s", user.id)
        return True

    async def app_password(self, user: User, password: str, identifier: str) -> bool:
        for candidate in await self.store.app_passwords.of_user(user.id, identifier):
            if await self.hasher.verify(password, candidate.password_hash):
                return True
        return False

    async def admit(self, user: User, app_id: str | None, method: Method) -> UserIdentity:
        """Check the user may log in here, and describe them."""
        if not user.active:
            raise Inactive()
        groups = await self.store.groups.of_user(user.id)
        group_ids = tuple(g.id for g in groups)
        if app_id is not None:
            try:
                app = await self.store.apps.get(app_id)
            except NotFound:
                raise NoAccess(f"unknown app {app_id}") from None
            allowed = may_use(
                app.access, user_id=user.id, is_admin=user.is_admin, group_ids=group_ids
            )
            if not allowed:
                raise NoAccess()
        return UserIdentity(
            user_id=user.id,
            username=user.username,
            email=user.email,
            display_name=user.name_for_display,
            role=user.role,
            group_ids=group_ids,
            group_names=tuple(g.name for g in groups),
            method=method,
        )


class UserPasswordChecker:
    def __init__(self, verifier: UserVerifier) -> None:
        self._v = verifier

    async def check(self, creds: UserPassword) -> UserIdentity:
        v = self._v
        ctx = creds.context
        digest = v.cache.digest(
            "user", creds.login.strip().lower(), ctx.app_id or "", creds.app_passwords_for or "",
            ctx.second_factor, creds.password,
        )
        cached = v.cache.get(digest) if v.cache.enabled else None
        if cached is not None:
            return cached
        epoch = v.cache.epoch
        user = await v.user(creds.login)
        password, code = creds.password, None
        if ctx.second_factor == "ldap_opt_in" and user.totp_enabled and user.ldap_totp:
            # Cloudron's LDAP 2FA: the code is appended to the password.
            password, code = creds.password[:-DIGITS], creds.password[-DIGITS:]
        if await v.main_password(user, password):
            if not user.active:
                # Before the 2FA step, so a deactivated user is never asked for a code.
                raise Inactive()
            if user.totp_enabled and user.totp_secret:
                if ctx.second_factor == "enforce":
                    raise TwoFactorRequired()
                if code is not None:
                    if not await v.totp.verify(user.id, user.totp_secret, code):
                        raise BadCredentials("wrong or reused TOTP code")
                    # Never cached: each code works once.
                    return await v.admit(user, ctx.app_id, "password+totp")
            identity = await v.admit(user, ctx.app_id, "password")
        elif creds.app_passwords_for and await v.app_password(
            user, creds.password, creds.app_passwords_for
        ):
            identity = await v.admit(user, ctx.app_id, "app_password")
        else:
            raise BadCredentials()
        v.cache.put(digest, identity, ctx.app_id, epoch)
        return identity


class PasswordTOTPChecker:
    def __init__(self, verifier: UserVerifier) -> None:
        self._v = verifier

    async def check(self, creds: PasswordTOTP) -> UserIdentity:
        v = self._v
        user = await v.user(creds.login)
        if not await v.main_password(user, creds.password):
            raise BadCredentials()
        if user.totp_enabled and user.totp_secret:
            if not await v.totp.verify(user.id, user.totp_secret, creds.code):
                raise BadCredentials("wrong or reused TOTP code")
            return await v.admit(user, creds.context.app_id, "password+totp")
        return await v.admit(user, creds.context.app_id, "password")


class AppPasswordChecker:
    def __init__(self, verifier: UserVerifier) -> None:
        self._v = verifier

    async def check(self, creds: AppPassword) -> UserIdentity:
        v = self._v
        digest = v.cache.digest(
            "app_password", creds.login.strip().lower(), creds.context.app_id or "",
            creds.identifier, creds.password,
        )
        cached = v.cache.get(digest) if v.cache.enabled else None
        if cached is not None:
            return cached
        epoch = v.cache.epoch
        user = await v.user(creds.login)
        if not await v.app_password(user, creds.password, creds.identifier):
            raise BadCredentials()
        identity = await v.admit(user, creds.context.app_id, "app_password")
        v.cache.put(digest, identity, creds.context.app_id, epoch)
        return identity


class AppSecretChecker:
    """App credentials are long random strings: compared in constant time, not hashed."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def check(self, creds: AppSecret) -> AppIdentity:
        principal = creds.principal.strip().lower()
        if creds.addon == "ldap":
            app_id = creds.principal.strip()
            values = await self._store.apps.credentials(app_id, "ldap")
        else:
            found = await self._store.apps.find_by_credential(creds.addon, "username", principal)
            values = await self._store.apps.credentials(found, creds.addon) if found else {}
            app_id = found or ""
        expected = values.get("password")
        if expected is None:
            # Compare anyway so an unknown app costs what a wrong secret costs.
            hmac.compare_digest(creds.secret.encode(), b"x" * 48)
            raise UnknownAccount()
        if not hmac.compare_digest(creds.secret.encode(), expected.encode()):
            raise BadCredentials()
        return AppIdentity(app_id=app_id, addon=creds.addon, principal=principal)
