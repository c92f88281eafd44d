"""One migration history for both engines: NNNN_name.sql files applied in order."""

from __future__ import annotations

import time
from importlib import resources

_SERIAL_PK = {
    "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "postgresql": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
}

CREATE_HISTORY = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
)


def available() -> list[tuple[int, str, str]]:
    """(version, name, sql template) for every shipped migration, in order."""
    found = []
    for entry in resources.files(__package__).iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name[:-4].partition("_")
            found.append((int(version), name, entry.read_text()))
    return sorted(found)


def render(sql: str, dialect: str) -> str:
    return sql.replace("{serial_pk}", _SERIAL_PK[dialect])


def history_row(version: int, name: str) -> tuple[int, str, float]:
    return (version, name, time.time())
