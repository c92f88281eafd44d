"""The smaller pieces: connection caps, the login request rate, each door's answer, the
address grouping, and the [ratelimit] section mapped onto the policy's config."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import time_machine
from prometheus_client import CollectorRegistry, generate_latest

from gateway.config import ConfigError, load_config
from gateway.runtime.policy import build_policy
from ratelimit import (
    ConnectionLimiter,
    Delay,
    LockoutConfig,
    LockoutPolicy,
    NoLimits,
    ScopeLimits,
    Subject,
    source_key,
)
from ratelimit.answers import answer, try_later
from ratelimit.connections import LDAP_CONNECTIONS_PER_APP, MAIL_CONNECTIONS_PER_ADDRESS
from ratelimit.decisions import Allow, Banned

START = 1_800_000_000.0


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def test_connection_caps_count_per_key_and_free_on_release() -> None:
    registry = CollectorRegistry()
    cap = ConnectionLimiter(2, name="mail", registry=registry)
    assert cap.acquire("203.0.113.1")
    assert cap.acquire("203.0.113.1")
    assert not cap.acquire("203.0.113.1")
    assert cap.acquire("203.0.113.2"), "another address has its own count"
    cap.release("203.0.113.1")
    with cap.hold("203.0.113.1") as admitted:
        assert admitted
        with cap.hold("203.0.113.1") as again:
            assert not again
    assert cap.count("203.0.113.1") == 1
    cap.release("203.0.113.1")
    cap.release("203.0.113.1")  # one too many: ignored, never negative
    assert cap.count("203.0.113.1") == 0
    text = generate_latest(registry).decode()
    assert "gateway_connections_refused_mail_total 2.0" in text
    assert "gateway_connections_open_mail 1.0" in text
    assert (LDAP_CONNECTIONS_PER_APP, MAIL_CONNECTIONS_PER_ADDRESS) == (500, 50)


async def test_login_request_rate_answers_retry_after(clock: time_machine.Coordinates) -> None:
    policy = LockoutPolicy.open(LockoutConfig())
    try:
        limit = policy.request_limit("3/second;5/minute")
        assert [await limit.hit("198.51.100.1") for _ in range(3)] == [None] * 3
        assert await limit.hit("198.51.100.1") == pytest.approx(1.0)
        assert await limit.hit("198.51.100.2") is None, "per key"
        clock.shift(1.01)
        assert await limit.hit("198.51.100.1") is None
        assert await limit.hit("198.51.100.1") is None
        # Five in the minute: the longer window answers until its oldest hit leaves it.
        wait = await limit.hit("198.51.100.1")
        assert wait == pytest.approx(60 - 1.01, abs=0.05)
        with pytest.raises(ValueError, match="not a rate limit"):
            policy.request_limit("often")
    finally:
        await policy.close()


@pytest.mark.parametrize(
    ("protocol", "when", "code", "text"),
    [
        ("ldap", "attempt", 51, "Too many attempts, try again later"),
        ("smtp", "attempt", 454, "4.7.0 Too many attempts, try again later"),
        ("smtp", "connection", 421, "4.7.0 Too many connections, try again later"),
        ("imap", "attempt", "NO", "[UNAVAILABLE] Too many attempts, try again later"),
        ("pop3", "attempt", "-ERR", "[SYS/TEMP] Too many attempts, try again later"),
        ("pop3", "connection", "-ERR", "[IN-USE] Too many connections, try again later"),
        ("http", "attempt", 429, "Too many attempts, try again later"),
    ],
)
def test_each_door_answers_its_own_try_later(
    protocol: str, when: str, code: int | str, text: str
) -> None:
    refusal = try_later(protocol, 2.2, when)  # type: ignore[arg-type]
    assert (refusal.code, refusal.text) == (code, text)
    assert refusal.retry_after == 3
    assert refusal.headers == ({"Retry-After": "3"} if protocol == "http" else {})


def test_decisions_map_to_answers_with_whole_seconds_rounded_up() -> None:
    assert answer("http", Allow()) is None
    delayed = answer("http", Delay(0.2, "account"))
    assert delayed is not None
    assert delayed.headers == {"Retry-After": "1"}
    banned = answer("smtp", Banned("source", START + 899.5, 899.5))
    assert banned is not None
    assert banned.line == "454 4.7.0 Too many attempts, try again later"


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("[2001:db8:1:2::9]", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("unix-socket-peer", "unix-socket-peer"),
    ],
)
def test_sources_are_grouped_ipv4_by_address_ipv6_by_64(address: str, key: str) -> None:
    assert source_key(address) == key


def test_subjects_parse_as_addresses_accounts_or_explicitly() -> None:
    assert Subject.parse("Alice") == Subject("account", "alice")
    assert Subject.parse("192.0.2.1") == Subject("source", "192.0.2.1")
    assert Subject.parse("account:1.2.3.4") == Subject("account", "1.2.3.4")
    assert Subject.parse("source:2001:db8::/64") == Subject("source", "2001:db8::/64")


async def test_the_config_section_maps_onto_the_policy() -> None:
    config = load_config(env={})
    assert config.ratelimit.enabled is True
    assert config.ratelimit.on_storage_error == "deny"
    lockout = config.ratelimit.lockout()
    assert lockout.account == ScopeLimits(5, 10, 300.0)
    assert lockout.source == ScopeLimits(10, 20, 300.0)
    assert lockout.storage_uri == "memory://"
    policy = build_policy(config, CollectorRegistry())
    assert isinstance(policy, LockoutPolicy)
    await policy.close()

    env = {
        "GATEWAY_RATELIMIT_STORAGE": "redis://127.0.0.1:1/0",
        "GATEWAY_RATELIMIT_STORAGE_PASSWORD": "hunter2",
        "GATEWAY_RATELIMIT_ACCOUNT_BAN_AFTER": "7",
        "GATEWAY_RATELIMIT_ON_STORAGE_ERROR": "allow",
    }
    tuned = load_config(env=env).ratelimit.lockout()
    assert tuned.account.ban_after == 7
    assert tuned.on_storage_error == "allow"
    assert tuned.storage_password == "hunter2"
    assert "hunter2" not in repr(tuned)

    off = dataclasses.replace(config, ratelimit=dataclasses.replace(config.ratelimit,
                                                                    enabled=False))
    assert isinstance(build_policy(off), NoLimits)
    bad = dataclasses.replace(config, ratelimit=dataclasses.replace(
        config.ratelimit, account_delay_after=20))
    with pytest.raises(ConfigError, match="account_delay_after"):
        build_policy(bad)
    memcached = dataclasses.replace(config, ratelimit=dataclasses.replace(
        config.ratelimit, storage="memcached://127.0.0.1:11211"))
    with pytest.raises(ConfigError, match=r"ratelimit\.storage"):
        build_policy(memcached)
