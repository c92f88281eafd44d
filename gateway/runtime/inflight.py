"""The jobs a server has accepted and not yet finished, so ``stop(grace)`` can wait for them.

A server runs each unit of work (a request, a delivery, a bind) through ``spawn``; on stop
it closes its listeners first, then ``drain(grace)`` lets the jobs finish, cancels those
still running when the grace is over, and logs which ones were cut off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar, final

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long cancelled jobs get to unwind (close a socket, roll back) before drain() returns.
CANCEL_WAIT = 1.0


@final
class InFlight:
    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, job: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Run ``job`` as a task this server waits for on stop; ``name`` shows in the log."""
        task = asyncio.get_running_loop().create_task(job, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    async def drain(self, grace: float) -> list[str]:
        """Wait up to ``grace`` seconds; cancel what is left; answer the names cut off."""
        if not self._tasks:
            return []
        _done, pending = await asyncio.wait(set(self._tasks), timeout=max(0.0, grace))
        if not pending:
            return []
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=CANCEL_WAIT)
        names = sorted(task.get_name() for task in pending)
        log.warning(
            "%s: cut off %d in-flight job(s) after the %.1fs grace: %s",
            self._owner, len(names), grace, ", ".join(names),
        )
        return names
