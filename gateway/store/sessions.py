"""Server-side login-wall sessions. The cookie carries a random token; only its hash is kept."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from gateway.store.changes import Change
from gateway.store.database import Database
from gateway.store.models import WebSession

_COLUMNS = "id, user_id, app_id, created_at, last_seen, expires_at, data_json"


def session_key(token: str) -> str:
    """What the store keeps for a cookie token: a leaked table row opens no session."""
    return hashlib.sha256(token.encode()).hexdigest()


class WebSessions:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(
        self,
        token: str,
        *,
        user_id: str,
        app_id: str | None,
        expires_at: float,
        data: dict[str, Any] | None = None,
    ) -> WebSession:
        now = time.time()
        key = session_key(token)
        await self._db.execute(
            f"INSERT INTO web_sessions ({_COLUMNS}) VALUES ($1, $2, $3, $4, $4, $5, $6)",
            key, user_id, app_id, now, expires_at, json.dumps(data or {}),
        )
        return WebSession(key, user_id, app_id, now, now, expires_at, data or {})

    async def get(self, token: str) -> WebSession | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM web_sessions WHERE id = $1", session_key(token)
        )
        return WebSession.from_row(row) if row else None

    async def touch(self, token: str, now: float) -> None:
        await self._db.execute(
            "UPDATE web_sessions SET last_seen = $2 WHERE id = $1", session_key(token), now
        )

    async def remove(self, token: str) -> None:
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM web_sessions WHERE id = $1", session_key(token))
            tx.changed(Change("session", session_key(token)))

    async def remove_for_user(self, user_id: str) -> int:
        async with self._db.transaction() as tx:
            count = await tx.execute("DELETE FROM web_sessions WHERE user_id = $1", user_id)
            tx.changed(Change("session", f"user:{user_id}"))
        return count

    async def remove_expired(self, now: float) -> int:
        return await self._db.execute("DELETE FROM web_sessions WHERE expires_at < $1", now)
