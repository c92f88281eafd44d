"""What the door-by-door lockout tests share: two client addresses, clients that send from
them, and the one attack every door is put through.

Every client here is a real one (ldap3, smtplib, imaplib, poplib, aiohttp) on a real socket
bound to a 127.0.0.x source address, so the door sees the address the policy keys on. The
blocking clients run in a thread: the servers share the test's event loop.
"""

from __future__ import annotations

import asyncio
import imaplib
import poplib
import socket
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

import time_machine

from ratelimit import LockoutConfig, LockoutPolicy, ScopeLimits

T = TypeVar("T")

# Two loopback addresses nobody else in the suite uses (127.0.0.2 is the DNSBL's listed
# test address in tests/mail_in_world.py): the owner's device and the attacker's.
OWNER = "127.0.0.77"
ATTACKER = "127.0.0.66"
# A third address that never logged in: the account's ban applies to it.
STRANGER = "127.0.0.88"
START = 1_800_000_000.0
CLIENT_TIMEOUT = 20.0

# An account waits after 3 distinct wrong passwords and is banned at 5 (the source limits
# stay at their defaults, 10 and 20, so the refusals below are the account's).
CONFIG = LockoutConfig(account=ScopeLimits(delay_after=3, ban_after=5))


def lockout_policy() -> LockoutPolicy:
    return LockoutPolicy.open(CONFIG)


async def blocking(fn: Callable[..., T], *args: Any) -> T:
    """A blocking client call in a thread, bounded; the servers keep serving on the loop."""
    return await asyncio.wait_for(asyncio.to_thread(fn, *args), CLIENT_TIMEOUT + 10)


class SourcedIMAP4(imaplib.IMAP4):
    """imaplib's client, connecting from ``source`` (imaplib has no source_address)."""

    def __init__(self, host: str, port: int, source: str) -> None:
        self._source = source
        super().__init__(host, port, timeout=CLIENT_TIMEOUT)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection(
            (self.host, self.port), timeout, source_address=(self._source, 0)
        )


class SourcedPOP3(poplib.POP3):
    """poplib's client, connecting from ``source``."""

    def __init__(self, host: str, port: int, source: str) -> None:
        self._source = source
        super().__init__(host, port, timeout=CLIENT_TIMEOUT)

    def _create_socket(self, timeout: float) -> socket.socket:
        return socket.create_connection(
            (self.host, self.port), timeout, source_address=(self._source, 0)
        )


# One login attempt at a door: (source address, password) → the door's answer on the wire.
Attempt = Callable[[str, str], Awaitable[Hashable]]


@dataclass(frozen=True)
class Answers:
    """A door's exact answers: right password, wrong password, "try later"; ``banned`` is
    the "try later" while the ban lasts when it differs (HTTP's Retry-After)."""

    ok: Hashable
    wrong: Hashable
    later: Hashable
    banned: Hashable | None = None


async def expect(attempt: Attempt, source: str, password: str, expected: Hashable) -> None:
    """One attempt, and its answer compared with ``expected`` (both shown when they differ:
    this module is not rewritten by pytest)."""
    got = await attempt(source, password)
    assert got == expected, f"from {source} with {password!r}: {got!r}, expected {expected!r}"


async def attack_and_owner(
    attempt: Attempt, answers: Answers, policy: LockoutPolicy,
    clock: time_machine.Coordinates, password: str,
) -> None:
    """The attack every door goes through, asserting each answer on the wire.

    The owner logs in from OWNER; the attacker guesses distinct passwords from ATTACKER
    until the account waits (3), then, crossing each delay with the clock, until it is
    banned (5). While banned, the right password from ATTACKER (and from an address that
    never logged in) is refused with "try later"; the owner still gets in from OWNER.
    """
    banned = answers.banned if answers.banned is not None else answers.later
    await expect(attempt, OWNER, password, answers.ok)
    for n in range(3):
        await expect(attempt, ATTACKER, f"guess-{n}", answers.wrong)
    # Three distinct failures: the account waits 1 s, for the right password too.
    await expect(attempt, ATTACKER, "guess-3", answers.later)
    await expect(attempt, ATTACKER, password, answers.later)
    # …but not for its owner.
    await expect(attempt, OWNER, password, answers.ok)
    # Past each wait the guesses are answered again: the 4th waits 2 s, the 5th bans.
    clock.shift(1)
    await expect(attempt, ATTACKER, "guess-3", answers.wrong)
    clock.shift(2)
    await expect(attempt, ATTACKER, "guess-4", answers.wrong)
    bans = await policy.bans()
    assert [(b.subject.scope, b.kind, b.failures) for b in bans] == [("account", "ban", 5)]

    # Banned: the attacker's next guess and the right password are both "try later",
    # from the attacker's address and from one that never logged in.
    await expect(attempt, ATTACKER, "guess-5", banned)
    await expect(attempt, ATTACKER, password, banned)
    await expect(attempt, STRANGER, password, banned)
    # The owner, who logged in from OWNER before the attack, still gets in.
    await expect(attempt, OWNER, password, answers.ok)


async def same_wrong_password(
    attempt: Attempt, answers: Answers, policy: LockoutPolicy, password: str,
    *, times: int = 20,
) -> None:
    """A client retrying one stale password: always "wrong", never "try later"."""
    for _ in range(times):
        await expect(attempt, ATTACKER, "stale-password", answers.wrong)
    assert await policy.bans(include_delays=True) == []
    await expect(attempt, ATTACKER, password, answers.ok)
