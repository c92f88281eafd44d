"""A request-rate limit for one endpoint (the login form's POST), on the policy's storage.

Cloudron limits its password routes to 10 requests/s per address (nginx ``limit_req``,
burst 5). Here the limit is one or more limits strings, ``"10/second"`` or
``"10/second;60/minute"`` (a short burst, a lower sustained rate), each a moving window on
the same limits storage as the lockout counters, so ``redis://`` shares it between nodes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import final

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from ratelimit.errors import StorageUnavailable

# How a storage failure is answered: the policy passes its one guard (see LockoutPolicy).
Guard = Callable[[Awaitable[float | None]], Awaitable[float | None]]


def parse_rate(spec: str) -> list[RateLimitItem]:
    """The limits of ``spec``; ValueError names a spec limits cannot read."""
    try:
        return parse_many(spec)
    except ValueError as exc:
        raise ValueError(f"not a rate limit: {spec!r} ({exc})") from None


@final
class RequestRateLimit:
    def __init__(
        self,
        spec: str,
        storage: Storage,
        *,
        name: str = "request",
        clock: Callable[[], float] = time.time,
        guard: Guard | None = None,
    ) -> None:
        self._items = parse_rate(spec)
        self.spec = spec
        self._name = name
        self._limiter = MovingWindowRateLimiter(storage)
        self._clock = clock
        self._guard = guard

    async def hit(self, key: str) -> float | None:
        """Count a request from ``key``: None when allowed, else seconds to wait."""
        if self._guard is not None:
            return await self._guard(self._hit(key))
        return await self._hit(key)

    async def _hit(self, key: str) -> float | None:
        try:
            for item in self._items:
                if not await self._limiter.hit(item, self._name, key):
                    stats = await self._limiter.get_window_stats(item, self._name, key)
                    return max(0.0, stats.reset_time - self._clock())
        except (StorageError, OSError) as exc:
            raise StorageUnavailable(str(exc) or type(exc).__name__) from exc
        return None
