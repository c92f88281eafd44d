"""Records what backends report about apps on their own (a process exited, restarted…)."""

from __future__ import annotations

import asyncio
import logging
from typing import final

from gateway.containers.launch import AppState
from gateway.store import Store, StoreError

log = logging.getLogger(__name__)


@final
class AppStateRecorder:
    """A ``StateListener`` writing to the store. Backends call it synchronously from their
    own tasks; the write happens in a task of its own, awaited by ``drain()``."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._writes: set[asyncio.Task[None]] = set()

    def __call__(
        self, app_id: str, state: AppState, detail: str | None, container_id: str | None = None
    ) -> None:
        task = asyncio.create_task(self.record(app_id, state, detail, container_id))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def record(
        self, app_id: str, state: AppState, detail: str | None, container_id: str | None = None
    ) -> None:
        try:
            if container_id is None:
                await self._store.apps.record_runtime(app_id, state=state, detail=detail)
            else:
                await self._store.apps.record_runtime(
                    app_id, state=state, detail=detail, container_id=container_id
                )
        except StoreError as exc:
            log.warning("app %s: could not record its state: %s", app_id, exc)

    async def drain(self) -> None:
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
