"""The narrow surface the repositories need from a database engine.

SQL is written once, PostgreSQL style (``$1``, ``$2``…); the SQLite engine rewrites the
placeholders. Rows come back as plain dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol

from gateway.store.changes import Change, ChangeHub

Row = dict[str, Any]


class Executor(Protocol):
    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...

    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; answer the number of rows it touched."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


class Transaction(Executor, Protocol):
    def changed(self, change: Change) -> None:
        """Announce ``change`` to every node once this transaction commits."""
        ...


class SchemaTransaction(Executor, Protocol):
    async def script(self, sql: str) -> None:
        """Run a migration file: several statements, no arguments."""
        ...


class Database(Executor, Protocol):
    dialect: Literal["sqlite", "postgresql"]
    changes: ChangeHub

    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...

    def migration(self) -> AbstractAsyncContextManager[SchemaTransaction]:
        """One transaction holding the schema lock of every process and node sharing the
        database, so two that start together read the history and migrate once, and a
        failed migration leaves nothing behind."""
        ...

    async def start_change_feed(self) -> None:
        """Begin hearing other processes' changes (idempotent)."""
        ...

    async def close(self) -> None: ...
