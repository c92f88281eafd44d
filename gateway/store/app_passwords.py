"""App passwords: per-client secrets of a user, each valid for one app id or for ``mail``."""

from __future__ import annotations

import time
import uuid

from gateway.store.changes import Change
from gateway.store.database import Database
from gateway.store.errors import InvalidValue, NotFound
from gateway.store.models import AppPassword

_COLUMNS = "id, user_id, name, identifier, password_hash, created_at"


class AppPasswords:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self, user_id: str, name: str, identifier: str, password_hash: str
    ) -> AppPassword:
        if not name.strip():
            raise InvalidValue("name", "must not be empty")
        if not identifier.strip():
            raise InvalidValue("identifier", "an app id or 'mail'")
        password_id = f"apppw-{uuid.uuid4()}"
        async with self._db.transaction() as tx:
            if not await tx.fetchrow("SELECT 1 FROM users WHERE id = $1", user_id):
                raise NotFound("user", user_id)
            await tx.execute(
                f"INSERT INTO app_passwords ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)",
                password_id, user_id, name.strip(), identifier.strip(), password_hash, time.time(),
            )
            tx.changed(Change("app_password", user_id))
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM app_passwords WHERE id = $1", password_id
        )
        assert row is not None
        return AppPassword.from_row(row)

    async def of_user(self, user_id: str, identifier: str | None = None) -> list[AppPassword]:
        if identifier is None:
            rows = await self._db.fetch(
                f"SELECT {_COLUMNS} FROM app_passwords WHERE user_id = $1 ORDER BY created_at",
                user_id,
            )
        else:
            rows = await self._db.fetch(
                f"SELECT {_COLUMNS} FROM app_passwords WHERE user_id = $1 AND identifier = $2 "
                "ORDER BY created_at",
                user_id, identifier,
            )
        return [AppPassword.from_row(r) for r in rows]

    async def revoke(self, password_id: str, user_id: str | None = None) -> None:
        async with self._db.transaction() as tx:
            row = await tx.fetchrow(
                "SELECT user_id FROM app_passwords WHERE id = $1", password_id
            )
            if row is None or (user_id is not None and row["user_id"] != user_id):
                raise NotFound("app password", password_id)
            await tx.execute("DELETE FROM app_passwords WHERE id = $1", password_id)
            tx.changed(Change("app_password", row["user_id"]))
