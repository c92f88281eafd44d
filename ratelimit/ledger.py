"""The counters behind the policy, all kept by limits strategies on one storage.

- failures per subject: a moving window (``MovingWindowRateLimiter``) per scope, sized to
  the ban threshold, so its count is exact up to the point where the subject is banned;
- guesses already counted: a one-hit fixed window per (account, guess) lasting the account
  window, so the same wrong secret repeated counts once;
- places trusted for an account: a one-hit fixed window per (account, source or device)
  lasting ``exempt_time``, refreshed on each successful login.

The guess key is a hash of the account and the portal's keyed digest (never the secret),
so a storage dump cannot even tell that two accounts share a password. limits raises
``StorageError`` for a storage that fails; it leaves here as ``StorageUnavailable``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import Storage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from limits.errors import StorageError

from ratelimit.bans import Subject
from ratelimit.config import LockoutConfig
from ratelimit.errors import StorageUnavailable

T = TypeVar("T")


def _seconds(value: float) -> int:
    # limits windows are whole seconds; round up so a window is never shorter than asked.
    return max(1, math.ceil(value))


def _hashed(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


async def _storage_call(call: Awaitable[T]) -> T:
    try:
        return await call
    except (StorageError, OSError) as exc:
        raise StorageUnavailable(str(exc) or type(exc).__name__) from exc


class FailureLedger:
    def __init__(self, storage: Storage, config: LockoutConfig) -> None:
        self._moving = MovingWindowRateLimiter(storage)
        self._fixed = FixedWindowRateLimiter(storage)
        self._windows: dict[str, RateLimitItem] = {
            "source": RateLimitItemPerSecond(
                config.source.ban_after, _seconds(config.source.window), namespace="failures"
            ),
            "account": RateLimitItemPerSecond(
                config.account.ban_after, _seconds(config.account.window), namespace="failures"
            ),
        }
        self._guess = RateLimitItemPerSecond(1, _seconds(config.account.window), namespace="guess")
        self._trust = RateLimitItemPerSecond(1, _seconds(config.exempt_time), namespace="trusted")

    async def first_guess(self, account: str, digest: str) -> bool:
        """True the first time this account sees this guess within its window."""
        guess = _hashed(account, digest)
        return await _storage_call(self._fixed.hit(self._guess, account, guess))

    async def add_failure(self, subject: Subject) -> int:
        """Count one failure; answer the failures now in the subject's window."""
        item = self._windows[subject.scope]
        await _storage_call(self._moving.hit(item, subject.scope, subject.value))
        stats = await _storage_call(
            self._moving.get_window_stats(item, subject.scope, subject.value)
        )
        return item.amount - stats.remaining

    async def clear(self, subject: Subject) -> None:
        item = self._windows[subject.scope]
        await _storage_call(self._moving.clear(item, subject.scope, subject.value))

    async def trust(self, account: str, places: Sequence[str]) -> None:
        """Remember that ``places`` logged in to ``account``; restarts their exemption."""
        for place in places:
            await _storage_call(self._fixed.clear(self._trust, account, _hashed(place)))
            await _storage_call(self._fixed.hit(self._trust, account, _hashed(place)))

    async def trusted(self, account: str, places: Sequence[str]) -> bool:
        for place in places:
            # test() is False once the one-hit window is used: that place logged in.
            if not await _storage_call(self._fixed.test(self._trust, account, _hashed(place))):
                return True
        return False
