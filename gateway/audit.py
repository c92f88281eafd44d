"""The audit trail: every login success and failure, logged at once and stored in batches.

Each event is written to the structured log immediately and queued for the store; a
background task writes the queue in one transaction every ``interval`` seconds, so a burst
of logins costs one write, not one each. ``close()`` writes what is left.

Successful logins repeat: an app binding as its users does so thousands of times a minute.
Identical successes waiting for the same write are stored once, with ``data["count"]`` and
``data["last_at"]`` (Cloudron de-duplicated ``user.login`` per day); every failure is stored
on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable

from gateway.store.audit import AuditEvents
from gateway.store.models import AuditEvent

log = logging.getLogger("gateway.audit")

MAX_QUEUE = 100_000
COALESCED_ACTIONS = frozenset({"user.login", "app.login"})
_RepeatKey = tuple[str, str, str | None, str | None, str | None, str | None, str | None]


class AuditLog:
    def __init__(
        self,
        events: AuditEvents,
        *,
        interval: float = 0.2,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._events = events
        self._interval = interval
        self._clock = clock
        self._queue: list[AuditEvent] = []
        # For a coalesced success waiting in the queue: [its index, count, last time].
        self._repeats: dict[_RepeatKey, list[float]] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._dropped = 0
        self._closing = False

    def record(
        self,
        action: str,
        *,
        door: str,
        source: str | None = None,
        app_id: str | None = None,
        user_id: str | None = None,
        login: str | None = None,
        reason: str | None = None,
    ) -> AuditEvent:
        event = AuditEvent(
            action=action, door=door, at=self._clock(), source=source, app_id=app_id,
            user_id=user_id, login=login, reason=reason,
        )
        if log.isEnabledFor(logging.INFO):
            # Built only for a log that will print it: a login is one event, and the
            # store below records it either way.
            fields = {k: v for k, v in event.__dict__.items() if v and k not in ("data", "id")}
            log.info(action, extra={"audit": fields})
        if action in COALESCED_ACTIONS:
            key = (action, door, source, app_id, user_id, login, reason)
            slot = self._repeats.get(key)
            if slot is not None:
                slot[1] += 1
                slot[2] = event.at
                return event
            if len(self._queue) < MAX_QUEUE:
                self._repeats[key] = [len(self._queue), 1, event.at]
        if len(self._queue) >= MAX_QUEUE:
            # The store is down or far behind; the log line above still has the event.
            self._dropped += 1
            return event
        self._queue.append(event)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-writer")
        return event

    async def _run(self) -> None:
        # Bounded by close(): a driver may turn the cancellation close() sends into an error
        # of its own (asyncpg: TimeoutError while rolling back), which must not keep this
        # loop, and so close(), going forever.
        while not self._closing:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._closing:
                    return
                log.exception("writing %d audit events failed; will retry", len(self._queue))

    async def flush(self) -> None:
        batch, self._queue = self._queue, []
        repeats, self._repeats = self._repeats, {}
        if not batch:
            return
        for index, count, last_at in repeats.values():
            if count > 1:
                event = batch[int(index)]
                data = {**event.data, "count": int(count), "last_at": last_at}
                batch[int(index)] = dataclasses.replace(event, data=data)
        try:
            await self._events.add(batch)
        except BaseException:
            # Back in front of what arrived meanwhile, counts already folded in.
            self._queue[:0] = batch
            for slot in self._repeats.values():
                slot[0] += len(batch)
            raise
        if self._dropped:
            log.warning("audit queue was full: %d events only in the log", self._dropped)
            self._dropped = 0

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._closing = False
        await self.flush()
