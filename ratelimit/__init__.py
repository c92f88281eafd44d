"""Rate limiting and lockout: the one policy every door asks before any password work."""

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

__all__ = [
    "Allow",
    "Attempt",
    "AttemptPolicy",
    "Banned",
    "Decision",
    "Delay",
    "NoLimits",
    "Outcome",
]
