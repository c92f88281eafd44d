"""Rate limiting and lockout: the one policy every door asks before any password work."""

from ratelimit.bans import Ban, Subject
from ratelimit.config import LockoutConfig, ScopeLimits
from ratelimit.connections import ConnectionLimiter
from ratelimit.decisions import (
    Allow,
    Attempt,
    AttemptPolicy,
    Banned,
    Decision,
    Delay,
    NoLimits,
    Outcome,
)
from ratelimit.errors import RateLimitError, StorageUnavailable, UnsupportedStorage
from ratelimit.policy import LockoutPolicy
from ratelimit.requests import RequestRateLimit
from ratelimit.sources import source_key

__all__ = [
    "Allow",
    "Attempt",
    "AttemptPolicy",
    "Ban",
    "Banned",
    "ConnectionLimiter",
    "Decision",
    "Delay",
    "LockoutConfig",
    "LockoutPolicy",
    "NoLimits",
    "Outcome",
    "RateLimitError",
    "RequestRateLimit",
    "ScopeLimits",
    "StorageUnavailable",
    "Subject",
    "UnsupportedStorage",
    "source_key",
]
