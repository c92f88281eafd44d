"""The store's change announcements of interest, queued for one async consumer.

The store's hub calls subscribers synchronously, after commit; the work a change calls for
(starting a container) is slow and async. So changes are collected into an ordered set — a
key announced five times while the consumer was busy is handled once — and handed over in
batches.
"""

from __future__ import annotations

import asyncio
from typing import final

from gateway.store import Change, ChangeHub


@final
class ChangeFeed:
    def __init__(self, hub: ChangeHub, kinds: frozenset[str]) -> None:
        self._kinds = kinds | {"reset"}
        self._pending: dict[Change, None] = {}
        self._wake = asyncio.Event()
        self._closed = False
        self._unsubscribe = hub.subscribe(self._hear)

    def _hear(self, change: Change) -> None:
        if change.kind in self._kinds:
            self._pending[change] = None
            self._wake.set()

    async def next_batch(self) -> list[Change]:
        """The changes heard since the last batch; empty once the feed is closed."""
        await self._wake.wait()
        if self._closed:
            return []
        self._wake.clear()
        batch = list(self._pending)
        self._pending.clear()
        return batch

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._unsubscribe()
        # Wakes a consumer waiting for the next batch: it ends on an empty one, so stopping
        # does not rely on cancellation alone (a library may turn a cancel into an error).
        self._wake.set()
