"""Small named values every node must agree on (for example the keyed-hash key)."""

from __future__ import annotations

from gateway.store.database import Database


class Settings:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, key: str) -> str | None:
        row = await self._db.fetchrow("SELECT value FROM settings WHERE key = $1", key)
        return row["value"] if row else None

    async def get_or_create(self, key: str, value: str) -> str:
        """Store ``value`` unless another node stored one first; answer the one kept."""
        await self._db.execute(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            key, value,
        )
        kept = await self.get(key)
        assert kept is not None
        return kept
