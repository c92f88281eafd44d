"""SQLite engine: the embedded default. One file in WAL mode, one connection on one thread.

Every statement runs on a single worker thread so the event loop never blocks on disk, and
an asyncio lock keeps a transaction's statements together. Other processes (the CLI, a
second server) write the same file; their changes reach this process through the
``change_log`` table, polled cheaply with ``PRAGMA data_version``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

from gateway.store.changes import RESET, Change, ChangeHub
from gateway.store.database import Row
from gateway.store.errors import Conflict

log = logging.getLogger(__name__)
T = TypeVar("T")

_PLACEHOLDER = re.compile(r"\$(\d+)")
# Keep an hour of changes: enough for any poller that is running; one that fell further
# behind is told to reset instead.
CHANGE_LOG_KEEP = 3600.0
# Seconds a statement waits for another process's lock before "database is locked".
BUSY_TIMEOUT = 5.0


# What a racing writer meets when the row it checked for appeared meanwhile, or a reference
# names a row that is gone: the repositories' Conflict, as on PostgreSQL.
_CONFLICTS = frozenset(
    {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_FOREIGNKEY"}
)


def _translate(sql: str) -> str:
    return _PLACEHOLDER.sub(r"?\1", sql)


def _statements(script: str) -> Iterator[str]:
    """Split a script into statements: ``executescript`` would commit the open transaction."""
    statement = ""
    for piece in script.split(";"):
        statement += piece + ";"
        if sqlite3.complete_statement(statement):
            if statement.strip(" \t\r\n;"):
                yield statement
            statement = ""
    if statement.strip(" \t\r\n;"):
        raise ValueError(f"unfinished SQL statement at the end of the script: {statement!r}")


@contextlib.contextmanager
def _conflicts() -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as exc:
        if exc.sqlite_errorname in _CONFLICTS:
            raise Conflict(str(exc)) from exc
        raise


class SqliteDatabase:
    dialect: Literal["sqlite", "postgresql"] = "sqlite"

    def __init__(self, path: Path, *, poll_interval: float = 0.25) -> None:
        self.path = path
        self.changes = ChangeHub()
        self._poll_interval = poll_interval
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._lock = asyncio.Lock()
        self._conn: sqlite3.Connection | None = None
        self._sql_cache: dict[str, str] = {}
        self._feed: asyncio.Task[None] | None = None
        self._last_seq = 0
        self._own_seqs: set[int] = set()

    @classmethod
    async def open(cls, path: Path, *, poll_interval: float = 0.25) -> SqliteDatabase:
        db = cls(path, poll_interval=poll_interval)
        await db._call(db._connect)
        return db

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Another process (the CLI) may hold the write lock for a moment, or be switching a
        # new file to WAL: wait for it from the first statement on (connect's busy timeout).
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        mode = self._enable_wal(conn)
        if mode.lower() != "wal":
            raise RuntimeError(f"{self.path}: SQLite refused WAL mode (got {mode})")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        self._conn = conn

    @staticmethod
    def _enable_wal(conn: sqlite3.Connection) -> str:
        """Switch to WAL, waiting for another connection switching the same new file.

        Two connections upgrading their locks at once would deadlock, so SQLite answers one
        "database is locked" at once, without calling the busy handler: retry until
        BUSY_TIMEOUT, as the handler would have.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorname != "SQLITE_BUSY" or time.monotonic() > deadline:
                    raise
            time.sleep(0.01)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)

    def _sql(self, sql: str) -> str:
        cached = self._sql_cache.get(sql)
        if cached is None:
            cached = self._sql_cache[sql] = _translate(sql)
        return cached

    # -- statements (run on the worker thread) ---------------------------------------

    def _fetch(self, sql: str, args: Sequence[Any]) -> list[Row]:
        assert self._conn is not None
        with _conflicts():
            return [dict(r) for r in self._conn.execute(self._sql(sql), args).fetchall()]

    def _execute(self, sql: str, args: Sequence[Any]) -> int:
        assert self._conn is not None
        with _conflicts():
            return self._conn.execute(self._sql(sql), args).rowcount

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        assert self._conn is not None
        with _conflicts():
            self._conn.executemany(self._sql(sql), rows)

    def _script(self, sql: str) -> None:
        assert self._conn is not None
        for statement in _statements(sql):
            self._conn.execute(statement)

    # -- Executor ---------------------------------------------------------------------

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self._lock:
            return await self._call(self._fetch, sql, args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._lock:
            return await self._call(self._execute, sql, args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self.transaction() as tx:
            await tx.executemany(sql, rows)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SqliteTransaction]:
        async with self._lock, self._immediate() as tx:
            yield tx
            seqs = await self._call(self._log_changes, tx.pending)
        if self._feed is not None:
            # Only the poller forgets these, so only remember them while it runs.
            self._own_seqs.update(seqs)
        self.changes.publish(tx.pending)

    @contextlib.asynccontextmanager
    async def migration(self) -> AsyncIterator[_SqliteTransaction]:
        # BEGIN IMMEDIATE takes the file's write lock: another process migrating waits here
        # (busy_timeout), then finds the history it wrote.
        async with self._lock, self._immediate() as tx:
            yield tx

    @contextlib.asynccontextmanager
    async def _immediate(self) -> AsyncIterator[_SqliteTransaction]:
        """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any error. The caller holds the lock.

        A statement handed to the worker thread runs there even when its caller is
        cancelled meanwhile (a server stopping cuts its connections' tasks). A BEGIN left
        behind like that would hold the connection in a transaction nobody ends: every
        later BEGIN would fail, and every later write would be lost. So whatever ends the
        transaction runs on the worker thread, right behind the statement that began it.
        """
        try:
            await self._call(self._execute, "BEGIN IMMEDIATE", ())
        except BaseException:
            self._pool.submit(self._end_transaction)
            raise
        try:
            yield _SqliteTransaction(self)
            await self._call(self._execute, "COMMIT", ())
        except BaseException:
            # Also when COMMIT's wait was cancelled: it went through, and nothing is open.
            self._pool.submit(self._end_transaction)
            raise

    def _end_transaction(self) -> None:
        """Roll back the open transaction, if there is one (on the worker thread)."""
        if self._conn is not None and self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                # Nobody awaits this job: say it here, or it is never heard of.
                log.exception("could not roll back an abandoned transaction")

    def _log_changes(self, changes: list[Change]) -> list[int]:
        assert self._conn is not None
        now = time.time()
        seqs = []
        for change in changes:
            row = self._conn.execute(
                "INSERT INTO change_log (kind, key, at) VALUES (?, ?, ?) RETURNING seq",
                (change.kind, change.key, now),
            ).fetchone()
            seqs.append(row[0])
        return seqs

    # -- hearing other processes -------------------------------------------------------

    async def start_change_feed(self) -> None:
        if self._feed is not None:
            return
        async with self._lock:
            self._last_seq = await self._call(self._newest_seq)
        self._feed = asyncio.create_task(self._poll_forever(), name="sqlite-change-feed")

    async def _poll_forever(self) -> None:
        version = None
        last_prune = time.monotonic()
        while True:
            try:
                async with self._lock:
                    current = await self._call(self._data_version)
                if current != version:
                    version = current
                    await self.poll_changes()
                if time.monotonic() - last_prune > 60:
                    last_prune = time.monotonic()
                    await self.execute(
                        "DELETE FROM change_log WHERE at < $1", time.time() - CHANGE_LOG_KEEP
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading changes from %s failed; retrying", self.path)
            await asyncio.sleep(self._poll_interval)

    def _data_version(self) -> int:
        assert self._conn is not None
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _newest_seq(self) -> int:
        """The last seq ever handed out (AUTOINCREMENT remembers it past deletions)."""
        assert self._conn is not None
        row = self._conn.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'change_log'"
        ).fetchone()
        return int(row[0]) if row else 0

    def _read_log(self, after: int) -> tuple[list[Row], int]:
        """Changes after ``after`` and the newest seq, from one snapshot."""
        assert self._conn is not None
        self._conn.execute("BEGIN")
        try:
            rows = self._fetch(
                "SELECT seq, kind, key FROM change_log WHERE seq > $1 ORDER BY seq", (after,)
            )
            return rows, self._newest_seq()
        finally:
            self._conn.execute("COMMIT")

    async def poll_changes(self) -> None:
        """Publish changes other processes committed since the last look."""
        async with self._lock:
            rows, newest = await self._call(self._read_log, self._last_seq)
        if newest <= self._last_seq:
            return
        if not rows or rows[0]["seq"] != self._last_seq + 1:
            # Seqs have no gaps, so a missing one was pruned before we read it.
            self.changes.publish([RESET])
        fresh = [Change(r["kind"], r["key"]) for r in rows if r["seq"] not in self._own_seqs]
        self._own_seqs = {seq for seq in self._own_seqs if seq > newest}
        self._last_seq = newest
        if fresh:
            self.changes.publish(fresh)

    async def close(self) -> None:
        if self._feed is not None:
            self._feed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feed
            self._feed = None
        if self._conn is not None:
            async with self._lock:
                await self._call(self._conn.close)
            self._conn = None
        self._pool.shutdown(wait=True)


class _SqliteTransaction:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        self.pending: list[Change] = []

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return await self._db._call(self._db._fetch, sql, args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def execute(self, sql: str, *args: Any) -> int:
        return await self._db._call(self._db._execute, sql, args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._db._call(self._db._executemany, sql, rows)

    async def script(self, sql: str) -> None:
        await self._db._call(self._db._script, sql)

    def changed(self, change: Change) -> None:
        if change not in self.pending:
            self.pending.append(change)
