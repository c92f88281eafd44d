"""Where a checked message goes: signed with its From domain's DKIM key, spooled, queued.

``accept`` returns only after the spool has the message on disk (fsync'd), which is what
lets the handler answer 250; the queue is told afterwards and delivers in the background.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

from smtp import dkim
from smtp.domains import DomainIndex
from smtp.queue import DeliveryQueue
from smtp.spool import Envelope, QueuedMessage


class Outbox:
    def __init__(
        self,
        queue: DeliveryQueue,
        domains: DomainIndex,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._queue = queue
        self._domains = domains
        self._clock = clock

    async def accept(
        self, envelope: Envelope, content: bytes, *, signing_domain: str | None
    ) -> QueuedMessage:
        if signing_domain:
            domain = await self._domains.get(signing_domain)
            if domain is not None and domain.dkim_private_key:
                # RSA in dkimpy is pure Python: off the loop, so other sessions go on.
                content = await asyncio.get_running_loop().run_in_executor(
                    None, dkim.sign, content, domain
                )
        envelope = dataclasses.replace(envelope, arrived_at=self._clock())
        # Shielded: once the write has started, a client hanging up must not leave a
        # message on disk that the queue does not know about until its next scan.
        return await asyncio.shield(self._spool_and_queue(envelope, content))

    async def _spool_and_queue(self, envelope: Envelope, content: bytes) -> QueuedMessage:
        queued = await self._queue.spool.accept(envelope, content)
        self._queue.add(queued)
        return queued
