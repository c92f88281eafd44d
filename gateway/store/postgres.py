"""PostgreSQL engine (asyncpg) for deployments where several gateway nodes share one store.

A committed change is NOTIFYed on one channel; every node LISTENs and publishes what other
nodes changed to its own subscribers. A node that loses its listening connection cannot
know what it missed, so on reconnect it publishes ``RESET``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Literal

import asyncpg

from gateway.store.changes import RESET, Change, ChangeHub
from gateway.store.database import Row
from gateway.store.errors import Conflict

log = logging.getLogger(__name__)

CHANNEL = "gateway_changes"
# Advisory lock id held while migrating, so two nodes starting together migrate once.
MIGRATION_LOCK = 0x6761_7465
# How long the change listener may take to answer a health check before it counts as lost.
LISTENER_CHECK_TIMEOUT = 5.0
# What a lost or unreachable server raises (InterfaceError: "connection is closed").
_CONNECTION_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


@contextlib.contextmanager
def _conflicts() -> Iterator[None]:
    """A racing writer's unique or foreign-key violation is the repositories' Conflict."""
    try:
        yield
    except (asyncpg.UniqueViolationError, asyncpg.ForeignKeyViolationError) as exc:
        raise Conflict(str(exc)) from exc


def _rowcount(status: str) -> int:
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class PostgresDatabase:
    dialect: Literal["sqlite", "postgresql"] = "postgresql"

    def __init__(self, dsn: str, pool: asyncpg.Pool, *, password: str | None) -> None:
        self.changes = ChangeHub()
        self._dsn = dsn
        self._password = password
        self._pool = pool
        self._origin = secrets.token_hex(8)
        self._listener: asyncpg.Connection | None = None
        self._feed: asyncio.Task[None] | None = None
        self._closing = False

    @classmethod
    async def open(
        cls, dsn: str, *, password: str | None = None, pool_size: int = 10
    ) -> PostgresDatabase:
        pool = await asyncpg.create_pool(
            dsn, password=password, min_size=1, max_size=pool_size, command_timeout=30
        )
        assert pool is not None
        return cls(dsn, pool, password=password)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        with _conflicts():
            return [dict(r) for r in await self._pool.fetch(sql, *args)]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        with _conflicts():
            row = await self._pool.fetchrow(sql, *args)
        return dict(row) if row is not None else None

    async def execute(self, sql: str, *args: Any) -> int:
        with _conflicts():
            return _rowcount(await self._pool.execute(sql, *args))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self.transaction() as tx:
            await tx.executemany(sql, rows)

    @contextlib.asynccontextmanager
    async def migration(self) -> AsyncIterator[_PostgresTransaction]:
        # The lock is the transaction's own: a node that dies mid-migration releases it,
        # and the migration runs on the one connection that holds it (no second
        # connection from the pool is needed, so a pool of one cannot deadlock).
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            yield _PostgresTransaction(conn)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PostgresTransaction]:
        async with self._pool.acquire() as conn, conn.transaction():
            tx = _PostgresTransaction(conn)
            yield tx
            for change in tx.pending:
                # Delivered to listeners only if the transaction commits.
                await conn.execute(
                    "SELECT pg_notify($1, $2)", CHANNEL, f"{self._origin}|{change.encode()}"
                )
        self.changes.publish(tx.pending)

    # -- hearing other nodes -------------------------------------------------------------

    async def start_change_feed(self) -> None:
        if self._feed is not None:
            return
        await self._listen()
        self._feed = asyncio.create_task(self._watch_listener(), name="pg-change-feed")

    async def _listen(self) -> None:
        if self._listener is not None:
            # A listener that stopped answering may still hold its socket.
            self._listener.terminate()
            self._listener = None
        conn = await asyncpg.connect(self._dsn, password=self._password)
        await conn.add_listener(CHANNEL, self._on_notify)
        self._listener = conn

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        origin, _, body = payload.partition("|")
        if origin != self._origin:
            self.changes.publish([Change.decode(body)])

    async def _watch_listener(self) -> None:
        delay = 0.5
        while not self._closing:
            await asyncio.sleep(1.0)
            conn = self._listener
            if conn is not None and not conn.is_closed():
                try:
                    await conn.execute("SELECT 1", timeout=LISTENER_CHECK_TIMEOUT)
                    delay = 0.5
                    continue
                except _CONNECTION_ERRORS:
                    pass
            log.warning("lost the PostgreSQL change listener; reconnecting")
            try:
                await self._listen()
            except _CONNECTION_ERRORS as exc:
                log.warning("PostgreSQL change listener: %s; retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            # What was NOTIFYed while we were away is lost: drop every cached thing.
            self.changes.publish([RESET])

    async def close(self) -> None:
        self._closing = True
        if self._feed is not None:
            self._feed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feed
        if self._listener is not None and not self._listener.is_closed():
            await self._listener.close()
        await self._pool.close()


class _PostgresTransaction:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self.pending: list[Change] = []

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        with _conflicts():
            return [dict(r) for r in await self._conn.fetch(sql, *args)]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        with _conflicts():
            row = await self._conn.fetchrow(sql, *args)
        return dict(row) if row is not None else None

    async def execute(self, sql: str, *args: Any) -> int:
        with _conflicts():
            return _rowcount(await self._conn.execute(sql, *args))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with _conflicts():
            await self._conn.executemany(sql, rows)

    async def script(self, sql: str) -> None:
        await self._conn.execute(sql)

    def changed(self, change: Change) -> None:
        if change not in self.pending:
            self.pending.append(change)
