"""Account administration: what changing a user's credentials or standing implies.

The store writes rows; this module knows the consequences. A new password, a disabled or
removed account, or a second factor turned on or off ends the user's login-wall sessions
(they were opened under the old terms), and every change is an audit event naming the door
it came through. The CLI calls this; an admin web UI or the login wall's own "change
password" page would call the same methods, so the rules live in one place.

Verified-credential caches need nothing from here: every write below announces a change
on the store's feed, which every node's cache already follows.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import final

from gateway.audit import AuditLog
from gateway.auth import PasswordHasher
from gateway.auth.credentials import Door
from gateway.auth.totp import new_secret, provisioning_uri
from gateway.store import Conflict, NotFound, Store, validation
from gateway.store.models import AppPassword, Group, Role, User

# App passwords are typed into mail clients and app settings by hand: leave out characters
# that look alike (0/O, 1/l/I). 24 of these 54 symbols carry about 138 bits.
APP_PASSWORD_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
APP_PASSWORD_LENGTH = 24
# The identifier app passwords for the mail server carry (any other is an app id).
MAIL_IDENTIFIER = "mail"


@dataclass(frozen=True)
class TotpEnrolment:
    """What the user's authenticator needs, shown once when 2FA is turned on."""

    secret: str = field(repr=False)
    uri: str = field(repr=False)


@dataclass(frozen=True)
class IssuedAppPassword:
    """A new app password: the record kept, and the password itself, shown once."""

    record: AppPassword
    password: str = field(repr=False)


@final
class Accounts:
    """User administration with its consequences, for one door (``cli``, later the web UI)."""

    def __init__(
        self,
        store: Store,
        hasher: PasswordHasher,
        audit: AuditLog,
        *,
        door: Door = "cli",
        source: str | None = None,
    ) -> None:
        self._store = store
        self._hasher = hasher
        self._audit = audit
        self._door = door
        self._source = source

    # -- lifecycle --------------------------------------------------------------------

    async def create(
        self,
        *,
        username: str,
        email: str,
        password: str,
        display_name: str = "",
        role: Role = "user",
    ) -> User:
        validation.password(password)
        password_hash = await self._hasher.hash(password)
        user = await self._store.users.add(
            username=username, email=email, password_hash=password_hash,
            display_name=display_name, role=role,
        )
        self._record("user.add", user, reason=role)
        return user

    async def remove(self, user: User) -> None:
        await self._keep_an_owner(user)
        # Sessions and app passwords go with the row (ON DELETE CASCADE); ending the
        # sessions first announces it, so login walls drop any copy they hold.
        await self._store.sessions.remove_for_user(user.id)
        await self._store.users.remove(user.id)
        self._record("user.remove", user)

    async def disable(self, user: User) -> int:
        """Refuse every future login and end the open sessions; answer how many ended."""
        await self._keep_an_owner(user)
        await self._store.users.update(user.id, active=False)
        ended = await self._store.sessions.remove_for_user(user.id)
        self._record("user.disable", user)
        return ended

    async def enable(self, user: User) -> User:
        updated = await self._store.users.update(user.id, active=True)
        self._record("user.enable", user)
        return updated

    # -- secrets ----------------------------------------------------------------------

    async def set_password(self, user: User, password: str) -> int:
        """Replace the password and end the open sessions; answer how many ended."""
        validation.password(password)
        password_hash = await self._hasher.hash(password)
        await self._store.users.set_password_hash(user.id, password_hash)
        ended = await self._store.sessions.remove_for_user(user.id)
        self._record("user.password", user)
        return ended

    async def enable_totp(self, user: User, *, issuer: str) -> TotpEnrolment:
        """Turn 2FA on with a new secret; sessions opened with a password alone end."""
        if user.totp_enabled:
            # A second enrolment would silently break the authenticator the user has.
            raise Conflict(f"2FA is already on for {_label(user)}; turn it off first")
        secret = new_secret()
        await self._store.users.set_totp(user.id, secret, True)
        await self._store.sessions.remove_for_user(user.id)
        self._record("user.2fa.enable", user)
        return TotpEnrolment(secret, provisioning_uri(secret, _label(user), issuer))

    async def disable_totp(self, user: User) -> int:
        """Turn 2FA off (a lost phone); sessions end, as for a new password."""
        await self._store.users.set_totp(user.id, None, False)
        ended = await self._store.sessions.remove_for_user(user.id)
        self._record("user.2fa.disable", user)
        return ended

    async def set_ldap_totp(self, user: User, on: bool) -> User:
        """The LDAP opt-in: binds then expect the code appended to the password."""
        updated = await self._store.users.update(user.id, ldap_totp=on)
        self._record("user.ldap_2fa.on" if on else "user.ldap_2fa.off", user)
        return updated

    async def add_app_password(
        self, user: User, *, name: str, identifier: str
    ) -> IssuedAppPassword:
        """A generated password valid only for ``identifier`` (an app id, or ``mail``)."""
        identifier = identifier.strip()
        if identifier != MAIL_IDENTIFIER:
            await self._store.apps.get(identifier)  # NotFound names the unknown app
        password = "".join(
            secrets.choice(APP_PASSWORD_ALPHABET) for _ in range(APP_PASSWORD_LENGTH)
        )
        password_hash = await self._hasher.hash(password)
        record = await self._store.app_passwords.add(user.id, name, identifier, password_hash)
        self._record("user.app_password.add", user, app_id=_app_of(identifier), reason=record.id)
        return IssuedAppPassword(record, password)

    async def revoke_app_password(self, user: User, password_id: str) -> AppPassword:
        for record in await self._store.app_passwords.of_user(user.id):
            if record.id == password_id:
                break
        else:
            raise NotFound("app password", password_id)
        await self._store.app_passwords.revoke(password_id, user.id)
        self._record(
            "user.app_password.revoke", user, app_id=_app_of(record.identifier), reason=record.id
        )
        return record

    # -- groups -----------------------------------------------------------------------

    async def add_group(self, name: str) -> Group:
        group = await self._store.groups.add(name)
        self._record_group("group.add", group)
        return group

    async def remove_group(self, group: Group) -> None:
        await self._store.groups.remove(group.id)
        self._record_group("group.remove", group)

    async def add_member(self, group: Group, user: User) -> None:
        await self._store.groups.add_member(group.id, user.id)
        self._record("group.member.add", user, reason=group.name)

    async def remove_member(self, group: Group, user: User) -> None:
        await self._store.groups.remove_member(group.id, user.id)
        self._record("group.member.remove", user, reason=group.name)

    # -- helpers ----------------------------------------------------------------------

    async def _keep_an_owner(self, user: User) -> None:
        """Refuse to lock out the last active owner: nobody could administer the rest."""
        if user.role != "owner" or not user.active:
            return
        owners = [u for u in await self._store.users.list() if u.role == "owner" and u.active]
        if all(u.id == user.id for u in owners):
            raise Conflict(f"{_label(user)} is the last active owner")

    def _record(
        self, action: str, user: User, *, app_id: str | None = None, reason: str | None = None
    ) -> None:
        self._audit.record(
            action, door=self._door, source=self._source, app_id=app_id, user_id=user.id,
            login=user.username or user.email, reason=reason,
        )

    def _record_group(self, action: str, group: Group) -> None:
        self._audit.record(action, door=self._door, source=self._source, reason=group.name)


def _label(user: User) -> str:
    return user.username or user.email


def _app_of(identifier: str) -> str | None:
    return None if identifier == MAIL_IDENTIFIER else identifier
