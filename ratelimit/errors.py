"""The failures of the rate-limit package, as types."""

from __future__ import annotations


class RateLimitError(Exception):
    """Base of this package's errors."""


class StorageUnavailable(RateLimitError):
    """The counters or the ban book could not be read or written (Redis down, timeout).

    Every storage failure is folded into this one type where it happens (limits'
    ``StorageError``, redis-py's ``RedisError``); ``LockoutPolicy`` catches it in one place
    and answers what ``on_storage_error`` names.
    """


class UnsupportedStorage(RateLimitError):
    """The storage URI names a backend the policy cannot use (checked when it is opened)."""
