"""``LockoutPolicy``: the one policy every door asks before any password work.

Per source (IPv4 address, IPv6 /64) and per account, failures are counted in moving
windows. From ``delay_after`` failures on, the subject waits ``base_delay``, doubling with
each further failure up to ``max_delay``; at ``ban_after`` it is banned for ``ban_time``.
A guess is counted once per account however often it is repeated (a phone retrying a stale
password is one failure, not a ban). A source or device that logged in to an account is
exempt from that account's delays and bans for ``exempt_time`` — not from its own source
limits — so an attacker hammering the account cannot lock its owner out.

Storage failures arrive as ``StorageUnavailable`` and are caught in one place,
``_guarded``: ``check`` then answers what ``on_storage_error`` names (``deny``: a Delay of
``storage_retry_after`` seconds with scope ``storage``; ``allow``: Allow), ``record`` drops
the outcome, and one log line marks the outage's start and one its end. Listing and lifting
bans raise it instead: an operator must see that the book could not be read.

limits' memory storage reads ``time.time()`` itself; the ``clock`` given here must agree
with it (tests move both with time-machine).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar, final

from prometheus_client import CollectorRegistry

from ratelimit.bans import Ban, Subject
from ratelimit.config import LockoutConfig, ScopeLimits
from ratelimit.decisions import ALLOW, Attempt, Banned, Decision, Delay, Outcome
from ratelimit.errors import StorageUnavailable
from ratelimit.ledger import FailureLedger
from ratelimit.metrics import PolicyMetrics
from ratelimit.outage import StorageOutage
from ratelimit.requests import RequestRateLimit
from ratelimit.sources import source_key
from ratelimit.storage import PolicyStorage, describe, open_storage

log = logging.getLogger("ratelimit")
T = TypeVar("T")

# With a shared storage, the active-bans gauge is refreshed from the book this often
# (seconds) while attempts come in, in the background of a check.
METRICS_REFRESH = 30.0


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@final
class LockoutPolicy:
    def __init__(
        self,
        config: LockoutConfig,
        storage: PolicyStorage,
        clock: Callable[[], float] = time.time,
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._config = config
        self._storage = storage
        self._clock = clock
        self._ledger = FailureLedger(storage.counters, config)
        self._outage = StorageOutage(
            storage=describe(config.storage_uri),
            answer=config.on_storage_error,
            retry_after=config.storage_retry_after,
            clock=clock,
        )
        # Bans this process started, lifted or last listed: what the gauge reports.
        self._known: dict[Subject, Ban] = {}
        self._refreshed = clock()
        self._refresh: asyncio.Task[None] | None = None
        self.metrics = PolicyMetrics(
            registry if registry is not None else CollectorRegistry(),
            lambda: list(self._known.values()),
            clock,
        )

    @classmethod
    def open(
        cls,
        config: LockoutConfig,
        clock: Callable[[], float] = time.time,
        *,
        registry: CollectorRegistry | None = None,
    ) -> LockoutPolicy:
        """The policy on the storage ``config.storage_uri`` names (no connection made yet)."""
        storage = open_storage(
            config.storage_uri,
            clock=clock,
            timeout=config.storage_timeout,
            password=config.storage_password,
        )
        return cls(config, storage, clock, registry=registry)

    @property
    def config(self) -> LockoutConfig:
        return self._config

    def now(self) -> float:
        """The policy's clock (what ``until`` in bans is measured against)."""
        return self._clock()

    async def close(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
        await self._storage.close()

    # -- what the doors call ------------------------------------------------------------

    async def check(self, attempt: Attempt) -> Decision:
        self.metrics.attempts.labels(attempt.door).inc()
        decision = await self._guarded(self._check(attempt), self._outage.decision)
        if isinstance(decision, Banned | Delay):
            kind = "ban" if isinstance(decision, Banned) else "delay"
            self.metrics.refusals.labels(attempt.door, decision.scope, kind).inc()
        self._maybe_refresh()
        return decision

    async def record(self, attempt: Attempt, outcome: Outcome) -> Banned | None:
        return await self._guarded(self._record(attempt, outcome), lambda: None)

    def request_limit(self, spec: str, *, name: str = "login") -> RequestRateLimit:
        """A request-rate limit (e.g. the login POST) on this policy's storage.

        Its storage failures go through the same guard as ``check``: refused for
        ``storage_retry_after`` seconds under ``deny``, let through under ``allow``.
        """

        def refused() -> float | None:
            decision = self._outage.decision()
            return decision.retry_after if isinstance(decision, Delay) else None

        async def guard(call: Awaitable[float | None]) -> float | None:
            return await self._guarded(call, refused)

        return RequestRateLimit(
            spec, self._storage.counters, name=name, clock=self._clock, guard=guard
        )

    # -- what the operator calls --------------------------------------------------------

    async def bans(self, *, include_delays: bool = False) -> list[Ban]:
        """Every active ban (and delay, if asked), oldest first. Raises StorageUnavailable."""
        blocks = await self._storage.bans.all()
        self._known = {b.subject: b for b in blocks if b.kind == "ban"}
        self._refreshed = self._clock()
        shown = blocks if include_delays else [b for b in blocks if b.kind == "ban"]
        return sorted(shown, key=lambda b: (b.since, b.subject))

    async def lift(self, subject: Subject | str) -> int:
        """Lift the ban or delay on ``subject`` and clear its failures: the next check allows.

        ``subject`` is ``source:…``/``account:…``, an address (grouped as the counters are)
        or an account name. Answers how many blocks were removed (0 or 1).
        """
        target = self.subject(subject)
        removed = await self._storage.bans.remove(target)
        await self._ledger.clear(target)
        self._known.pop(target, None)
        if removed:
            log.warning("rate-limit block on %s lifted by an operator", target)
        return removed

    def subject(self, subject: Subject | str) -> Subject:
        """The subject as the counters key it (an address becomes its network)."""
        parsed = Subject.parse(subject) if isinstance(subject, str) else subject
        if parsed.scope == "account":
            return Subject("account", parsed.value.strip().lower())
        value = parsed.value.strip()
        if "/" in value:
            try:
                return Subject("source", str(ipaddress.ip_network(value, strict=False)))
            except ValueError:
                return parsed
        return Subject("source", self._source_key(value))

    # -- inside ----------------------------------------------------------------------------

    async def _guarded(self, call: Awaitable[T], fallback: Callable[[], T]) -> T:
        """The one place a storage failure is caught and turned into the configured answer."""
        try:
            result = await call
        except StorageUnavailable as exc:
            self.metrics.storage_errors.inc()
            self._outage.failed(exc)
            return fallback()
        self._outage.recovered()
        return result

    async def _check(self, attempt: Attempt) -> Decision:
        subjects = self._subjects(attempt)
        if not subjects:
            return ALLOW
        blocks = await self._storage.bans.get_many(subjects)
        applying: list[Ban] = []
        for subject, block in zip(subjects, blocks, strict=True):
            if block is None:
                continue
            if subject.scope == "account" and await self._exempt(attempt):
                continue
            applying.append(block)
        if not applying:
            return ALLOW
        # A ban is the answer to give even beside a longer delay; then the longest wait.
        block = max(applying, key=lambda b: (b.kind == "ban", b.until))
        retry_after = max(0.0, block.until - self._clock())
        if block.kind == "ban":
            return Banned(block.subject.scope, block.until, retry_after, block.reason)
        return Delay(retry_after, block.subject.scope)

    async def _record(self, attempt: Attempt, outcome: Outcome) -> Banned | None:
        if outcome is Outcome.SUCCESS:
            if attempt.account is not None:
                await self._ledger.trust(attempt.account, self._places(attempt))
            return None
        if outcome is not Outcome.FAILURE:
            # The right secret, refused for another reason: not a guess.
            return None
        if (
            attempt.account is not None
            and attempt.secret_digest is not None
            and not await self._ledger.first_guess(attempt.account, attempt.secret_digest)
        ):
            return None
        started: Banned | None = None
        subjects = self._subjects(attempt)
        # Source and account are counted side by side: one round trip's wait on Redis.
        results = await asyncio.gather(
            *(self._ledger.add_failure(s) for s in subjects), return_exceptions=True
        )
        for result in results:
            # Both calls are awaited to the end, then the first failure is raised.
            if isinstance(result, BaseException):
                raise result
        counts = [r for r in results if isinstance(r, int)]
        for subject, failures in zip(subjects, counts, strict=True):
            block = self._block_for(subject, failures, attempt.door)
            if block is None:
                continue
            put = await self._storage.bans.put(block)
            if block.kind == "ban" and put == "new":
                self._ban_started(block)
                if started is None:
                    started = Banned(
                        subject.scope, block.until, block.until - block.since, block.reason
                    )
        return started

    def _block_for(self, subject: Subject, failures: int, door: str) -> Ban | None:
        limits: ScopeLimits = getattr(self._config, subject.scope)
        now = self._clock()
        if failures >= limits.ban_after:
            kind, length = "ban", self._config.ban_time
        else:
            length = self._config.delay_for(failures, limits)
            if length <= 0:
                return None
            kind = "delay"
        return Ban(subject, kind, door, failures, limits.window, now, now + length)  # type: ignore[arg-type]

    def _ban_started(self, ban: Ban) -> None:
        self._known[ban.subject] = ban
        self.metrics.bans.labels(ban.door, ban.subject.scope).inc()
        log.warning("rate-limit ban on %s until %s: %s", ban.subject, _when(ban.until), ban.reason)

    async def _exempt(self, attempt: Attempt) -> bool:
        if attempt.account is None:
            return False
        places = self._places(attempt)
        return bool(places) and await self._ledger.trusted(attempt.account, places)

    def _places(self, attempt: Attempt) -> list[str]:
        """Where a login came from, as the exemption remembers it: network and device."""
        places = []
        if attempt.source:
            places.append("source:" + self._source_key(attempt.source))
        if attempt.device:
            places.append("device:" + attempt.device)
        return places

    def _subjects(self, attempt: Attempt) -> list[Subject]:
        subjects = []
        if attempt.source:
            subjects.append(Subject("source", self._source_key(attempt.source)))
        if attempt.account:
            subjects.append(Subject("account", attempt.account))
        return subjects

    def _source_key(self, address: str) -> str:
        return source_key(
            address, ipv4_prefix=self._config.ipv4_prefix, ipv6_prefix=self._config.ipv6_prefix
        )

    def _maybe_refresh(self) -> None:
        """Keep the gauge of a shared book fresh, in the background, one listing at a time."""
        if not self._storage.shared or self._outage.ongoing:
            return
        if self._refresh is not None and not self._refresh.done():
            return
        if self._clock() - self._refreshed < METRICS_REFRESH:
            return
        self._refreshed = self._clock()

        async def refresh() -> None:
            await self._guarded(self.bans(), lambda: [])

        self._refresh = asyncio.get_running_loop().create_task(refresh(), name="ratelimit-bans")
