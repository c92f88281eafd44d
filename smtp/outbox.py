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
from smtp.spool import Envelope, QueuedMessage, new_id


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


class ListForwarder:
    """Hands the copies of a list message for members elsewhere to the outbound queue.

    The inbound side has already accepted the message for its local members; the remote
    members get it through the same spool, retries and bounces as any submission. The
    envelope sender is kept (the list's own address when the list rewrote it).
    """

    def __init__(self) -> None:
        # Set once the queue exists; the inbound side is built before it (the queue needs
        # the inbound listener for local delivery) and forwards only after start.
        self.outbox: Outbox | None = None

    async def forward(self, sender: str, recipients: list[str], content: bytes) -> None:
        if self.outbox is None:
            raise RuntimeError("list forwarding used before the mail queue was built")
        envelope = Envelope(
            id=new_id(), sender=sender, recipients=tuple(recipients), arrived_at=0.0,
            submitted_by="mail-list", size=len(content),
        )
        await self.outbox.accept(envelope, content, signing_domain=None)
