"""The one source of truth: users, groups, apps, mail and audit, on SQLite or PostgreSQL.

``open_store(url)`` picks the engine from the URL, migrates, and answers a ``Store`` whose
repositories (``store.users``, ``store.groups``…) are the same code on both engines.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from gateway.store import migrations
from gateway.store.app_passwords import AppPasswords
from gateway.store.apps import Apps
from gateway.store.audit import AuditEvents
from gateway.store.changes import RESET, Change, ChangeHub
from gateway.store.database import Database
from gateway.store.errors import Conflict, InvalidValue, NotFound, StoreError
from gateway.store.groups import Groups
from gateway.store.mail import Mail
from gateway.store.postgres import PostgresDatabase
from gateway.store.sessions import WebSessions
from gateway.store.settings import Settings
from gateway.store.sqlite import SqliteDatabase
from gateway.store.users import Users

__all__ = [
    "RESET",
    "Change",
    "ChangeHub",
    "Conflict",
    "InvalidValue",
    "NotFound",
    "Store",
    "StoreError",
    "open_store",
]


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.users = Users(db)
        self.groups = Groups(db)
        self.apps = Apps(db)
        self.app_passwords = AppPasswords(db)
        self.mail = Mail(db)
        self.audit = AuditEvents(db)
        self.sessions = WebSessions(db)
        self.settings = Settings(db)

    @property
    def changes(self) -> ChangeHub:
        return self.db.changes

    @property
    def dialect(self) -> str:
        return self.db.dialect

    async def migrate(self) -> list[int]:
        """Apply what is missing; answer the versions applied now."""
        async with self.db.migration() as tx:
            await tx.execute(migrations.CREATE_HISTORY)
            done = {r["version"] for r in await tx.fetch("SELECT version FROM schema_migrations")}
            applied = []
            for version, name, sql in migrations.available():
                if version in done:
                    continue
                await tx.script(migrations.render(sql, self.db.dialect))
                await tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    *migrations.history_row(version, name),
                )
                applied.append(version)
            return applied

    async def schema_version(self) -> int:
        row = await self.db.fetchrow("SELECT MAX(version) AS v FROM schema_migrations")
        return int(row["v"]) if row and row["v"] is not None else 0

    async def close(self) -> None:
        await self.db.close()


async def open_store(
    url: str,
    *,
    data_dir: Path = Path("."),
    password: str | None = None,
    pool_size: int = 10,
    poll_interval: float = 0.25,
    migrate: bool = True,
) -> Store:
    """Open the store ``url`` names (``sqlite:///FILE`` or ``postgresql://…``)."""
    parts = urlsplit(url)
    db: Database
    if parts.scheme == "sqlite":
        if parts.netloc:
            raise InvalidValue("store.url", "sqlite URLs are sqlite:///relative or sqlite:////absolute")
        path = Path(parts.path[1:]) if parts.path.startswith("/") else Path(parts.path)
        if not path.name:
            raise InvalidValue("store.url", "names no file")
        if not path.is_absolute():
            path = data_dir / path
        db = await SqliteDatabase.open(path, poll_interval=poll_interval)
    elif parts.scheme in ("postgresql", "postgres"):
        db = await PostgresDatabase.open(url, password=password, pool_size=pool_size)
    else:
        raise InvalidValue("store.url", f"scheme {parts.scheme!r}: use sqlite:// or postgresql://")
    store = Store(db)
    if migrate:
        try:
            await store.migrate()
        except BaseException:
            await store.close()
            raise
    return store
