"""The lockout policy through the real Portal, on a real SQLite store, memory:// and redis://.

The clock travels with time-machine (limits' memory storage reads ``time.time()`` itself;
limits' Redis windows use the client's timestamps, and the ban book compares ``until`` with
the policy's clock), so delays and bans are crossed without sleeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import time_machine
from prometheus_client import generate_latest

from gateway.audit import AuditLog
from gateway.auth import (
    BadCredentials,
    Locked,
    LoginContext,
    Portal,
    RateLimited,
    UserIdentity,
    UserPassword,
    build_portal,
)
from gateway.auth.hashing import HashParams, PasswordHasher
from gateway.config import AuthConfig
from gateway.metrics import Metrics
from gateway.store import Store, open_store
from ratelimit import (
    Allow,
    Attempt,
    Banned,
    LockoutConfig,
    LockoutPolicy,
    Outcome,
    ScopeLimits,
    Subject,
)

# The redis-server fixtures (redis_url) come from there.
pytest_plugins = ["tests.redis_service"]

FAST = AuthConfig(argon2_memory_kib=1024, argon2_time_cost=1)
PASSWORD = "correct-horse-battery-7f3a"
OWNER = "198.51.100.7"
ATTACKER = "203.0.113.66"
STRANGER = "192.0.2.200"
START = 1_800_000_000.0


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture(params=["memory", "redis"])
def storage_uri(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("redis_url")
    return url


@dataclass
class Gate:
    """A portal with the lockout policy, as every door sees it."""

    store: Store
    portal: Portal
    policy: LockoutPolicy
    audit: AuditLog

    async def login(self, login: str, password: str, source: str) -> UserIdentity:
        identity = await self.portal.login(
            UserPassword(login, password, LoginContext("ldap", source))
        )
        assert isinstance(identity, UserIdentity)
        return identity

    async def actions(self) -> list[tuple[str, str | None, str | None]]:
        await self.audit.flush()
        events = await self.store.audit.recent(limit=1000)
        return [(e.action, e.source, e.reason) for e in reversed(events)]


@pytest.fixture
async def gate(tmp_path: Path, storage_uri: str) -> AsyncIterator[Gate]:
    store = await open_store(f"sqlite:///{tmp_path / 'store.db'}", data_dir=tmp_path)
    hasher = PasswordHasher(
        HashParams(FAST.argon2_time_cost, FAST.argon2_memory_kib, FAST.argon2_parallelism)
    )
    await store.users.add(
        username="alice", email="alice@example.com", password_hash=hasher.hash_now(PASSWORD)
    )
    policy = LockoutPolicy.open(LockoutConfig(storage_uri=storage_uri))
    audit = AuditLog(store.audit, interval=3600)
    portal = await build_portal(
        FAST, store, audit=audit, metrics=Metrics(), policy=policy, hasher=hasher
    )
    try:
        yield Gate(store, portal, policy, audit)
    finally:
        await audit.close()
        await policy.close()
        hasher.close()
        await store.close()


async def test_attacker_is_delayed_then_banned_while_the_owner_still_gets_in(
    gate: Gate, clock: time_machine.Coordinates
) -> None:
    # The owner logged in from home before the attack: that address is now trusted.
    await gate.login("alice", PASSWORD, OWNER)

    # Five distinct wrong passwords: answered as wrong passwords, no delay yet before each.
    for n in range(5):
        with pytest.raises(BadCredentials):
            await gate.login("alice", f"guess-{n}", ATTACKER)
    # Then the account makes everyone else wait, doubling: 1 s, 2 s, 4 s, 8 s, 16 s.
    waits = []
    for n in range(5, 10):
        with pytest.raises(RateLimited) as delayed:
            await gate.login("alice", f"guess-{n}", ATTACKER)
        assert type(delayed.value) is RateLimited
        assert delayed.value.scope == "account"
        waits.append(delayed.value.retry_after)
        # The owner is not held up by the attack on their account.
        assert (await gate.login("alice", PASSWORD, OWNER)).username == "alice"
        clock.shift(delayed.value.retry_after)
        with pytest.raises(BadCredentials):
            await gate.login("alice", f"guess-{n}", ATTACKER)
    assert waits == pytest.approx([1, 2, 4, 8, 16], abs=0.01)

    # The tenth distinct failure banned the account for everybody without an exemption…
    with pytest.raises(Locked) as banned:
        await gate.login("alice", "guess-final", ATTACKER)
    assert banned.value.scope == "account"
    assert banned.value.retry_after == pytest.approx(900, abs=1)
    with pytest.raises(Locked):
        await gate.login("alice", PASSWORD, STRANGER)
    # …except its owner, from the address that logged in before.
    assert (await gate.login("alice", PASSWORD, OWNER)).username == "alice"

    bans = await gate.policy.bans()
    assert [(b.subject, b.failures, b.door) for b in bans] == [
        (Subject("account", "alice"), 10, "ldap")
    ]
    actions = await gate.actions()
    started = [a for a in actions if a[0] == "user.ban"]
    assert started == [("user.ban", ATTACKER, "account: 10 failures in 300s (last at ldap)")]
    assert ("user.lockout", STRANGER, "locked:account") in actions
    assert ("user.login.delayed", ATTACKER, "rate_limited:account") in actions

    # The ban ends on its own after ban_time.
    clock.shift(901)
    with pytest.raises(BadCredentials):
        await gate.login("alice", "guess-after", ATTACKER)


async def test_the_same_wrong_password_repeated_counts_once(
    gate: Gate, clock: time_machine.Coordinates
) -> None:
    # A phone retrying a stale password: twenty times, never delayed, never banned.
    for _ in range(20):
        with pytest.raises(BadCredentials):
            await gate.login("alice", "stale-password", ATTACKER)
        clock.shift(1)
    assert await gate.policy.bans(include_delays=True) == []
    # Four more distinct guesses make five distinct failures: now the account waits.
    for n in range(4):
        with pytest.raises(BadCredentials):
            await gate.login("alice", f"guess-{n}", ATTACKER)
    with pytest.raises(RateLimited) as delayed:
        await gate.login("alice", "guess-4", ATTACKER)
    assert delayed.value.scope == "account"
    blocks = await gate.policy.bans(include_delays=True)
    assert [(b.kind, b.failures) for b in blocks] == [("delay", 5)]


async def test_lifting_a_ban_allows_at_once_and_clears_the_count(
    gate: Gate, clock: time_machine.Coordinates
) -> None:
    policy = gate.policy
    for n in range(10):
        await policy.record(Attempt("ldap", ATTACKER, "alice", f"d{n}"), Outcome.FAILURE)
        clock.shift(20)  # past every delay (at most 16 s here), all inside the 5 min window
    assert isinstance(await policy.check(Attempt("ldap", STRANGER, "alice")), Banned)

    assert await policy.lift("Alice") == 1
    assert await policy.bans() == []
    assert isinstance(await policy.check(Attempt("ldap", STRANGER, "alice")), Allow)
    # The count started again: one more failure is one, not a ban or a delay.
    await policy.record(Attempt("ldap", ATTACKER, "alice", "again"), Outcome.FAILURE)
    assert isinstance(await policy.check(Attempt("ldap", STRANGER, "alice")), Allow)
    assert await policy.lift("alice") == 0


async def test_a_source_is_counted_by_its_ipv6_64_and_lifted_by_any_address_in_it(
    gate: Gate, clock: time_machine.Coordinates
) -> None:
    policy = gate.policy
    for n in range(20):
        # Every guess from a different address of one /64, each at a different account.
        source = f"2001:db8:1:2::{n + 1:x}"
        await policy.record(Attempt("smtp", source, f"user{n}", "d"), Outcome.FAILURE)
        clock.shift(11)
    decision = await policy.check(Attempt("smtp", "2001:db8:1:2:ffff::1", "bob"))
    assert isinstance(decision, Banned)
    assert decision.scope == "source"
    # The neighbouring /64 is somebody else.
    assert isinstance(await policy.check(Attempt("smtp", "2001:db8:1:3::1", "bob")), Allow)
    [ban] = await policy.bans()
    assert ban.subject == Subject("source", "2001:db8:1:2::/64")
    assert await policy.lift("2001:db8:1:2::abcd") == 1
    assert isinstance(await policy.check(Attempt("smtp", "2001:db8:1:2::1", "bob")), Allow)


async def test_a_trusted_device_is_exempt_from_the_account_ban_but_not_its_source_limit(
    gate: Gate, clock: time_machine.Coordinates
) -> None:
    policy = gate.policy
    await policy.record(Attempt("proxyauth", OWNER, "alice", "pw", device="dev-1"),
                        Outcome.SUCCESS)
    for n in range(10):
        await policy.record(Attempt("proxyauth", ATTACKER, "alice", f"d{n}"), Outcome.FAILURE)
        clock.shift(20)
    # The same device from a new network still gets in; a new device there does not.
    assert isinstance(
        await policy.check(Attempt("proxyauth", STRANGER, "alice", device="dev-1")), Allow
    )
    assert isinstance(await policy.check(Attempt("proxyauth", STRANGER, "alice")), Banned)
    # The attacker's own address is banned as a source: no exemption covers that.
    for n in range(10):
        await policy.record(Attempt("proxyauth", ATTACKER, f"u{n}", f"e{n}"), Outcome.FAILURE)
        clock.shift(5)
    decision = await policy.check(Attempt("proxyauth", ATTACKER, "alice", device="dev-1"))
    assert isinstance(decision, Banned)
    assert decision.scope == "source"


async def test_refused_logins_with_the_right_secret_are_not_guesses(
    gate: Gate, clock: time_machine.Coordinates
) -> None:
    policy = gate.policy
    for n in range(30):
        await policy.record(Attempt("ldap", ATTACKER, "alice", f"d{n}"), Outcome.REFUSED)
    assert isinstance(await policy.check(Attempt("ldap", ATTACKER, "alice")), Allow)


async def test_metrics_count_attempts_refusals_and_active_bans_by_door(
    gate: Gate, clock: time_machine.Coordinates
) -> None:
    policy = gate.policy
    for n in range(10):
        await policy.record(Attempt("imap", ATTACKER, "alice", f"d{n}"), Outcome.FAILURE)
        clock.shift(20)
    await policy.check(Attempt("imap", STRANGER, "alice"))
    await policy.check(Attempt("ldap", STRANGER, "bob"))
    text = generate_latest(policy.metrics.registry).decode()
    assert 'gateway_ratelimit_attempts_total{door="imap"} 1.0' in text
    assert 'gateway_ratelimit_attempts_total{door="ldap"} 1.0' in text
    assert 'gateway_ratelimit_refusals_total{door="imap",kind="ban",scope="account"} 1.0' in text
    assert 'gateway_ratelimit_active_bans{door="imap",scope="account"} 1.0' in text
    await policy.lift("alice")
    text = generate_latest(policy.metrics.registry).decode()
    assert 'gateway_ratelimit_active_bans{door="imap"' not in text


def test_delays_double_up_to_the_cap() -> None:
    config = LockoutConfig(base_delay=1.0, max_delay=10.0)
    limits = ScopeLimits(delay_after=3, ban_after=20)
    assert [config.delay_for(n, limits) for n in range(1, 9)] == [0, 0, 1, 2, 4, 8, 10, 10]
    with pytest.raises(ValueError, match="delay_after"):
        ScopeLimits(delay_after=5, ban_after=4)
    assert replace(config, max_delay=20.0).delay_for(8, limits) == 20.0


def test_no_secret_in_reprs() -> None:
    attempt = Attempt("proxyauth", OWNER, "alice", "digest-abc", device="cookie-xyz")
    assert "digest-abc" not in repr(attempt)
    assert "cookie-xyz" not in repr(attempt)
    assert "hunter2" not in repr(LockoutConfig(storage_password="hunter2"))
