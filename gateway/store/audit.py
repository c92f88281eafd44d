"""The audit log: every login success and failure at every door, newest last."""

from __future__ import annotations

import json
import uuid

from gateway.store.database import Database
from gateway.store.models import AuditEvent

_COLUMNS = "id, at, action, door, source, app_id, user_id, login, reason, data_json"


class AuditEvents:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, events: list[AuditEvent]) -> None:
        if not events:
            return
        await self._db.executemany(
            f"INSERT INTO audit_events ({_COLUMNS}) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            [
                (
                    e.id or str(uuid.uuid4()), e.at, e.action, e.door, e.source, e.app_id,
                    e.user_id, e.login, e.reason, json.dumps(e.data),
                )
                for e in events
            ],
        )

    async def recent(
        self,
        *,
        limit: int = 100,
        action: str | None = None,
        user_id: str | None = None,
        door: str | None = None,
    ) -> list[AuditEvent]:
        """Newest ``limit`` events matching every given filter, oldest first."""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM audit_events "
            "WHERE (CAST($1 AS TEXT) IS NULL OR action = $1) "
            "AND (CAST($2 AS TEXT) IS NULL OR user_id = $2) "
            "AND (CAST($3 AS TEXT) IS NULL OR door = $3) ORDER BY at DESC LIMIT $4",
            action, user_id, door, limit,
        )
        return [AuditEvent.from_row(r) for r in reversed(rows)]
