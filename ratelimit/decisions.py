"""What a door asks the policy, and the closed set of answers it gets.

This package imports nothing of the gateway's: the credential check (``gateway/auth``) and
the socket servers hold a policy and speak these types.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal, Protocol


@dataclass(frozen=True)
class Attempt:
    """One login attempt as the policy sees it: never the secret, only a keyed hash of it."""

    door: str
    source: str | None
    account: str | None
    secret_digest: str | None = field(default=None, repr=False)
    # An opaque id of a device cookie the web door may pass: a device that logged in to the
    # account before is exempt from that account's delays and bans, wherever it connects from.
    device: str | None = field(default=None, repr=False)


class Outcome(enum.Enum):
    SUCCESS = "success"
    # The secret was wrong or the account unknown: a guess, counted towards lockout.
    FAILURE = "failure"
    # The secret was right but the login was refused (inactive, no access): not a guess.
    REFUSED = "refused"


@dataclass(frozen=True)
class Allow:
    pass


# What a refusal is about: the source address (or its /64), the account, or the policy's own
# storage being unreachable (``on_storage_error = "deny"``).
Scope = Literal["source", "account", "storage"]


@dataclass(frozen=True)
class Delay:
    """Too many recent failures: answer "try later" for ``retry_after`` seconds."""

    retry_after: float
    scope: Scope


@dataclass(frozen=True)
class Banned:
    """A temporary ban. ``reason`` says why (failures, window, door) for the audit trail."""

    scope: Scope
    until: float
    retry_after: float
    reason: str = ""


Decision = Allow | Delay | Banned
ALLOW = Allow()


class AttemptPolicy(Protocol):
    async def check(self, attempt: Attempt) -> Decision: ...

    async def record(self, attempt: Attempt, outcome: Outcome) -> Banned | None:
        """Count the outcome; answer the ban this failure started, if it started one.

        The caller audits a returned ban once (``user.ban``); later attempts see it in
        ``check`` as a ``Banned`` decision.
        """
        ...


class NoLimits:
    """Allows everything; the default until a lockout policy is configured."""

    async def check(self, attempt: Attempt) -> Decision:
        return ALLOW

    async def record(self, attempt: Attempt, outcome: Outcome) -> Banned | None:
        return None
