"""Users: who may log in, how, and with which second factor."""

from __future__ import annotations

import time
import uuid
from typing import Any

from gateway.store import validation
from gateway.store.changes import Change
from gateway.store.database import Database
from gateway.store.errors import Conflict, InvalidValue, NotFound
from gateway.store.models import ROLES, Role, User

_COLUMNS = (
    "id, username, email, fallback_email, display_name, active, role, password_hash, "
    "totp_secret, totp_enabled, totp_last_step, ldap_totp, created_at, modified_at"
)
_UPDATABLE = {"email", "fallback_email", "display_name", "active", "role", "ldap_totp"}


class Users:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self,
        *,
        username: str | None,
        email: str,
        password_hash: str,
        display_name: str = "",
        role: Role = "user",
        fallback_email: str | None = None,
        active: bool = True,
    ) -> User:
        name = validation.username(username) if username is not None else None
        address = validation.email(email)
        if role not in ROLES:
            raise InvalidValue("role", f"one of {', '.join(ROLES)}")
        fallback = validation.email(fallback_email, "fallback_email") if fallback_email else address
        now = time.time()
        user_id = f"uid-{uuid.uuid4()}"
        async with self._db.transaction() as tx:
            if name and await tx.fetchrow("SELECT 1 FROM users WHERE username = $1", name):
                raise Conflict(f"username {name!r} is taken")
            if await tx.fetchrow("SELECT 1 FROM users WHERE email = $1", address):
                raise Conflict(f"email {address!r} is taken")
            await tx.execute(
                f"INSERT INTO users ({_COLUMNS}) VALUES "
                "($1, $2, $3, $4, $5, $6, $7, $8, NULL, FALSE, NULL, FALSE, $9, $9)",
                user_id, name, address, fallback, display_name, active, role, password_hash, now,
            )
            tx.changed(Change("user", user_id))
        return await self.get(user_id)

    async def get(self, user_id: str) -> User:
        row = await self._db.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE id = $1", user_id)
        if row is None:
            raise NotFound("user", user_id)
        return User.from_row(row)

    async def find(self, login: str) -> User | None:
        """The user a login names: an id, a username, or (with '@') a primary email."""
        key = login.strip().lower()
        if key.startswith("uid-"):
            sql = f"SELECT {_COLUMNS} FROM users WHERE id = $1"
            key = login.strip()
        elif "@" in key:
            sql = f"SELECT {_COLUMNS} FROM users WHERE email = $1"
        else:
            sql = f"SELECT {_COLUMNS} FROM users WHERE username = $1"
        row = await self._db.fetchrow(sql, key)
        return User.from_row(row) if row else None

    async def resolve(self, login: str) -> User:
        user = await self.find(login)
        if user is None:
            raise NotFound("user", login)
        return user

    async def list(self) -> list[User]:
        # Users without a username last on both engines (SQLite sorts NULL first, PG last).
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM users ORDER BY username IS NULL, username, email"
        )
        return [User.from_row(r) for r in rows]

    async def count(self) -> int:
        row = await self._db.fetchrow("SELECT COUNT(*) AS n FROM users")
        return int(row["n"]) if row else 0

    async def update(self, user_id: str, **fields: Any) -> User:
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise InvalidValue(", ".join(sorted(unknown)), "cannot be changed this way")
        if "email" in fields:
            fields["email"] = validation.email(fields["email"])
        if "fallback_email" in fields:
            fields["fallback_email"] = validation.email(fields["fallback_email"], "fallback_email")
        if "role" in fields and fields["role"] not in ROLES:
            raise InvalidValue("role", f"one of {', '.join(ROLES)}")
        if not fields:
            return await self.get(user_id)
        names = sorted(fields)
        assignments = ", ".join(f"{n} = ${i}" for i, n in enumerate(names, start=3))
        async with self._db.transaction() as tx:
            if "email" in fields:
                clash = await tx.fetchrow(
                    "SELECT 1 FROM users WHERE email = $1 AND id <> $2", fields["email"], user_id
                )
                if clash:
                    raise Conflict(f"email {fields['email']!r} is taken")
            changed = await tx.execute(
                f"UPDATE users SET modified_at = $2, {assignments} WHERE id = $1",
                user_id, time.time(), *(fields[n] for n in names),
            )
            if not changed:
                raise NotFound("user", user_id)
            tx.changed(Change("user", user_id))
        return await self.get(user_id)

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._write(
            user_id,
            "UPDATE users SET password_hash = $2, modified_at = $3 WHERE id = $1",
            password_hash, time.time(),
        )

    async def rehash(self, user_id: str, old_hash: str, new_hash: str) -> bool:
        """Replace a hash only if nobody changed it meanwhile (upgrade after a login)."""
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
                user_id, old_hash, new_hash,
            )
            # The secret is the same, so verified results stay valid: nothing to announce.
        return changed == 1

    async def set_totp(self, user_id: str, secret: str | None, enabled: bool) -> None:
        await self._write(
            user_id,
            "UPDATE users SET totp_secret = $2, totp_enabled = $3, totp_last_step = NULL, "
            "modified_at = $4 WHERE id = $1",
            secret, enabled, time.time(),
        )

    async def claim_totp_step(self, user_id: str, step: int) -> bool:
        """Record ``step`` as used; False when it (or a later one) was used already.

        One conditional UPDATE, so two doors (or two nodes) racing with the same code
        cannot both win: RFC 6238 section 5.2.
        """
        changed = await self._db.execute(
            "UPDATE users SET totp_last_step = $2 WHERE id = $1 "
            "AND (totp_last_step IS NULL OR totp_last_step < $2)",
            user_id, step,
        )
        return changed == 1

    async def remove(self, user_id: str) -> None:
        async with self._db.transaction() as tx:
            if not await tx.execute("DELETE FROM users WHERE id = $1", user_id):
                raise NotFound("user", user_id)
            tx.changed(Change("user", user_id))

    async def _write(self, user_id: str, sql: str, *args: Any) -> None:
        async with self._db.transaction() as tx:
            if not await tx.execute(sql, user_id, *args):
                raise NotFound("user", user_id)
            tx.changed(Change("user", user_id))
