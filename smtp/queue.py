"""The delivery queue: when each spooled message is tried, and what its outcomes change.

Each pending recipient carries its own next attempt time. A temporary failure doubles the
wait from ``retry_initial`` up to ``retry_max`` (Postfix's qmgr schedule); a recipient
still deferred once the message is older than ``lifetime``, or refused permanently, fails,
and when every recipient is finished the sender gets one bounce for the failed ones. Each
route's outcomes are written to the spool as soon as that route answers, before anything
else happens, so a crash never loses a "delivered" and nobody gets the message twice.

The queue also looks at the spool every ``scan_interval`` seconds, which is how it sees what
``gateway mail queue retry|delete`` did while it was running.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.audit import AuditLog
from gateway.runtime.inflight import InFlight
from smtp.bounce import build_bounce
from smtp.delivery import Deliverer, Outcome
from smtp.metrics import MailMetrics
from smtp.routes import Route, Router
from smtp.spool import Envelope, QueuedMessage, Spool

log = logging.getLogger(__name__)

DOOR = "smtp"


@dataclass(frozen=True)
class RetrySchedule:
    initial: float
    maximum: float
    lifetime: float

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th temporary failure."""
        return float(min(self.maximum, self.initial * 2 ** max(0, min(attempts - 1, 60))))


class DeliveryQueue:
    def __init__(
        self,
        spool: Spool,
        router: Router,
        deliverer: Deliverer,
        schedule: RetrySchedule,
        *,
        hostname: str,
        concurrency: int,
        metrics: MailMetrics,
        audit: AuditLog,
        clock: Callable[[], float] = time.time,
        scan_interval: float = 5.0,
    ) -> None:
        self.spool = spool
        self._router = router
        self._deliverer = deliverer
        self._schedule = schedule
        self._hostname = hostname
        self._concurrency = concurrency
        self._metrics = metrics
        self._audit = audit
        self._clock = clock
        self._scan_interval = scan_interval
        self._messages: dict[str, QueuedMessage] = {}
        self._mtimes: dict[str, float] = {}
        self._busy: set[str] = set()
        self._heap: list[tuple[float, int, str]] = []
        self._seq = 0
        self._wake = asyncio.Event()
        self._inflight = InFlight("mail-queue")
        self._dispatcher: asyncio.Task[None] | None = None
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Load what a previous run left in the spool and start delivering it."""
        await asyncio.get_running_loop().run_in_executor(None, self.spool.prepare)
        await self._scan()
        if self._messages:
            log.info("resuming %d queued message(s) from the spool", len(self._messages))
        self._dispatcher = asyncio.get_running_loop().create_task(
            self._dispatch(), name="mail-queue-dispatcher"
        )

    async def stop(self, grace: float) -> None:
        """Start no new attempt; let those under way finish within ``grace``."""
        self._stopping = True
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        await self._inflight.drain(grace)
        self.spool.close()

    def add(self, message: QueuedMessage) -> None:
        """A message the spool has just made durable: try it now."""
        self._messages[message.id] = message
        self._metrics.queued.set(len(self._messages))
        self._push(message)

    def __len__(self) -> int:
        return len(self._messages)

    def _push(self, message: QueuedMessage) -> None:
        due = message.next_attempt()
        if due is None:
            return
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, message.id))
        self._wake.set()

    # -- dispatching ---------------------------------------------------------------------

    async def _dispatch(self) -> None:
        last_scan = time.monotonic()
        while not self._stopping:
            now = self._clock()
            while (
                self._heap and self._heap[0][0] <= now
                and len(self._inflight) < self._concurrency
            ):
                _, _, message_id = heapq.heappop(self._heap)
                message = self._messages.get(message_id)
                if message is None or message_id in self._busy:
                    continue
                due = message.next_attempt()
                if due is None or due > now:
                    continue  # a stale entry; the current one is in the heap too
                self._busy.add(message_id)
                self._inflight.spawn(self._attempt(message), name=f"deliver-{message_id}")
            wait = self._scan_interval
            if self._heap and len(self._inflight) < self._concurrency:
                wait = min(wait, max(0.0, self._heap[0][0] - now))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            if time.monotonic() - last_scan >= self._scan_interval:
                last_scan = time.monotonic()
                try:
                    await self._scan()
                except OSError:
                    log.exception("cannot read the spool directory")

    async def _scan(self) -> None:
        """Pick up messages and log lines written by others (the CLI, a previous run)."""
        loop = asyncio.get_running_loop()
        ids = await loop.run_in_executor(None, self.spool.ids)
        present = set(ids)
        for gone in [m for m in self._messages if m not in present and m not in self._busy]:
            log.info("message %s left the spool (deleted by an operator)", gone)
            self._messages.pop(gone, None)
            self._mtimes.pop(gone, None)
        for message_id in ids:
            if message_id in self._busy:
                continue
            mtime = await loop.run_in_executor(None, self.spool.log_mtime, message_id)
            if message_id in self._messages and self._mtimes.get(message_id) == mtime:
                continue
            loaded = await loop.run_in_executor(None, self.spool.load, message_id)
            if loaded is None:
                continue
            self._mtimes[message_id] = mtime
            self._messages[message_id] = loaded
            if not loaded.pending():
                self._busy.add(message_id)
                self._inflight.spawn(self._finish_guarded(loaded), name=f"finish-{message_id}")
            else:
                self._push(loaded)
        self._metrics.queued.set(len(self._messages))

    # -- one attempt ---------------------------------------------------------------------

    async def _attempt(self, message: QueuedMessage) -> None:
        try:
            await self._try(message)
        except Exception:
            log.exception("delivery attempt of %s failed unexpectedly; retrying later",
                          message.id)
            self._defer_all(message)
        finally:
            self._busy.discard(message.id)
            if message.id in self._messages:
                self._push(message)
            self._wake.set()

    def _defer_all(self, message: QueuedMessage) -> None:
        """After a bug, wait before trying again rather than spinning."""
        later = self._clock() + self._schedule.delay(1)
        for rcpt in message.pending():
            message.apply({"event": "deferred", "rcpt": rcpt.address, "at": self._clock(),
                           "attempts": rcpt.attempts, "next": later})

    async def _try(self, message: QueuedMessage) -> None:
        now = self._clock()
        due = [r.address for r in message.pending() if r.next_attempt <= now]
        if not due:
            return
        try:
            content = await self.spool.content(message.id)
        except FileNotFoundError:
            self._messages.pop(message.id, None)
            return
        routes = await self._router.routes(message.envelope.sender, due)
        await asyncio.gather(
            *(self._deliver_route(message, route, rcpts, content)
              for route, rcpts in routes.items())
        )
        if message.id in self._messages and not message.pending():
            await self._finish(message, content)

    async def _deliver_route(
        self, message: QueuedMessage, route: Route, rcpts: list[str], content: bytes
    ) -> None:
        started = time.perf_counter()
        try:
            outcomes = await self._deliverer.deliver(
                route, message.envelope.sender, rcpts, content
            )
        except Exception as exc:
            log.exception("delivery via %s failed unexpectedly", route.describe())
            outcomes = {r: Outcome("deferred", f"451 4.3.0 local error: {exc}") for r in rcpts}
        self._metrics.delivery_seconds.observe(time.perf_counter() - started)
        events = [self._event(message, rcpt, outcomes[rcpt]) for rcpt in rcpts]
        if not await self.spool.record(message.id, events):
            log.info("message %s was deleted during its delivery", message.id)
            self._messages.pop(message.id, None)
            return
        for event in events:
            message.apply(event)
            self._report(message, event)

    def _event(self, message: QueuedMessage, rcpt: str, outcome: Outcome) -> dict[str, Any]:
        now = self._clock()
        event: dict[str, Any] = {"rcpt": rcpt, "at": now, "reply": outcome.reply}
        if outcome.result != "deferred":
            event["event"] = outcome.result
            return event
        attempts = message.recipients[rcpt].attempts + 1
        if now - message.envelope.arrived_at >= self._schedule.lifetime:
            event["event"] = "failed"
            event["reply"] = f"{outcome.reply} (gave up: the queue lifetime is over)"
            return event
        event.update(event="deferred", attempts=attempts,
                     next=now + self._schedule.delay(attempts))
        return event

    def _report(self, message: QueuedMessage, event: dict[str, Any]) -> None:
        kind = event["event"]
        self._metrics.deliveries.labels(kind).inc()
        action = {"delivered": "mail.deliver", "deferred": "mail.defer",
                  "failed": "mail.fail"}[kind]
        log.info("%s %s to <%s>: %s", message.id, kind, event["rcpt"], event["reply"])
        self._audit.record(
            action, door=DOOR, source=message.envelope.source,
            login=message.envelope.submitted_by or None,
            reason=f"{message.id} <{event['rcpt']}>: {event['reply']}"[:500],
        )

    # -- finishing -----------------------------------------------------------------------

    async def _finish_guarded(self, message: QueuedMessage) -> None:
        try:
            content = await self.spool.content(message.id)
            await self._finish(message, content)
        except FileNotFoundError:
            self._messages.pop(message.id, None)
        except Exception:
            log.exception("finishing %s failed; will retry at the next scan", message.id)
            self._mtimes.pop(message.id, None)
        finally:
            self._busy.discard(message.id)

    async def _finish(self, message: QueuedMessage, content: bytes) -> None:
        """Every recipient is done: bounce the failed ones to the sender, then forget it."""
        failed = message.failed()
        env = message.envelope
        if failed and env.sender and not message.bounced:
            bounce = build_bounce(message, content, hostname=self._hostname, failed=failed)
            queued = await self.spool.accept(
                Envelope(
                    id=f"{env.id}-bounce", sender="", recipients=(env.sender,),
                    arrived_at=self._clock(), submitted_by="MAILER-DAEMON", bounce_of=env.id,
                ),
                bounce,
            )
            await self.spool.record(env.id, [{"event": "bounced", "at": self._clock()}])
            message.bounced = True
            self._metrics.bounces.inc()
            self._audit.record(
                "mail.bounce", door=DOOR, source=env.source, login=env.submitted_by or None,
                reason=f"{env.id} to <{env.sender}>: {len(failed)} recipient(s) failed",
            )
            self.add(queued)
        elif failed and not env.sender:
            log.warning("bounce %s could not be delivered; dropped (bounces never bounce)",
                        env.id)
        await self.spool.remove(env.id)
        self._messages.pop(env.id, None)
        self._mtimes.pop(env.id, None)
        self._metrics.queued.set(len(self._messages))
