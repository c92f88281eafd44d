"""Keeps the index in step with the store: change notifications in, patches out.

The store announces each commit synchronously; reading the changed rows is async, so the
keys are queued and one task applies them in order, coalescing repeats. ``settled()`` lets
a caller (tests, the start-up path) wait until everything heard so far is applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.store import Change, Store
from ldap.index import DirectoryIndex

log = logging.getLogger(__name__)

IGNORED = frozenset({"app_password", "session"})


class IndexSync:
    def __init__(self, index: DirectoryIndex, store: Store) -> None:
        self._index = index
        self._store = store
        self._pending: dict[tuple[str, str], None] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: object = None

    def start(self) -> None:
        self._unsubscribe = self._store.changes.subscribe(self.on_change)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ldap-index-sync")

    async def stop(self) -> None:
        if callable(self._unsubscribe):
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def on_change(self, change: Change) -> None:
        if change.kind in IGNORED:
            return
        self._pending[(change.kind, change.key)] = None
        self._idle.clear()
        self._wake.set()

    async def settled(self) -> None:
        """Return once every change heard so far is in the index."""
        await self._idle.wait()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = list(self._pending)
                self._pending.clear()
                if ("reset", "*") in batch or any(kind == "reset" for kind, _ in batch):
                    batch = [("reset", "*")]
                for kind, key in batch:
                    try:
                        await self._apply(kind, key)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        # The next change (or a reset) retries; searches keep the last view.
                        log.exception("could not apply %s:%s to the directory", kind, key)
            if not self._pending:
                self._idle.set()

    async def _apply(self, kind: str, key: str) -> None:
        index, store = self._index, self._store
        if kind == "reset":
            await index.load(store)
        elif kind == "user":
            await index.refresh_user(store, key)
        elif kind == "group":
            await index.refresh_group(store, key)
        elif kind == "app":
            await index.refresh_app(store, key)
        elif kind == "mail_domain":
            await index.refresh_mail_domain(store, key)
        elif kind == "mailbox":
            await index.refresh_mailbox(store, key)
