"""redis:// in earnest: two gateway processes share bans; Redis going away and coming back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from gateway.auth.hashing import HashParams, PasswordHasher
from gateway.store import open_store
from ratelimit import Allow, Attempt, Delay, LockoutConfig, LockoutPolicy, Outcome
from tests.ldap.world import PASSWORD as LDAP_PASSWORD
from tests.ratelimit_doors_world import OWNER, blocking
from tests.test_ratelimit_doors import LDAP, ldap_bind, wiki_directory

# The redis-server fixtures (redis_url, private_redis) come from there.
pytest_plugins = ["tests.redis_service"]

if TYPE_CHECKING:
    # Only the type: the module itself is loaded as a plugin (its fixtures), above.
    from tests.redis_service import RedisServer

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery-7f3a"
ANSWER_TIMEOUT = 30.0


class Probe:
    """One gateway node in a subprocess (tests/ratelimit_probe.py), one command at a time."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, store_url: str, data_dir: Path, redis: str) -> Probe:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.ratelimit_probe", "--store", store_url,
            "--data-dir", str(data_dir), "--ratelimit", redis, "--account-ban-after", "3",
            cwd=REPO, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        probe = cls(process)
        assert await probe._read() == {"ready": True}
        return probe

    async def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), ANSWER_TIMEOUT)
        if not line:
            raise RuntimeError(f"probe exited ({await self.process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ask(self, command: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        await self.process.stdin.drain()
        return await self._read()

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await self.ask_nothing("quit")
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    async def ask_nothing(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        await self.process.stdin.drain()


@pytest.fixture
async def nodes(tmp_path: Path, redis_url: str) -> AsyncIterator[tuple[Probe, Probe]]:
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    store = await open_store(store_url, data_dir=tmp_path)
    hasher = PasswordHasher(HashParams(1, 1024, 1))
    try:
        await store.users.add(
            username="alice", email="alice@example.com", password_hash=hasher.hash_now(PASSWORD)
        )
    finally:
        hasher.close()
        await store.close()
    first = await Probe.start(store_url, tmp_path, redis_url)
    try:
        second = await Probe.start(store_url, tmp_path, redis_url)
        try:
            yield first, second
        finally:
            await second.stop()
    finally:
        await first.stop()


async def test_two_gateway_processes_on_one_redis_share_a_ban_and_its_lifting(
    nodes: tuple[Probe, Probe],
) -> None:
    first, second = nodes
    # Three distinct wrong passwords on the first node ban the account (ban_after = 3)…
    for n in range(3):
        assert (await first.ask(f"login alice guess-{n} 203.0.113.66"))["result"] == "bad"
    # …and the second node refuses even the right password from another address.
    refused = await second.ask(f"login alice {PASSWORD} 192.0.2.200")
    assert refused["result"] == "locked"
    assert refused["scope"] == "account"
    assert refused["retry_after"] == pytest.approx(900, abs=5)
    assert (await second.ask("bans"))["bans"] == ["account:alice"]

    # Lifted on the second node, the first lets alice in at once.
    assert (await second.ask("lift alice")) == {"lifted": 1}
    assert (await first.ask(f"login alice {PASSWORD} 192.0.2.200"))["result"] == "ok"
    assert (await first.ask("bans"))["bans"] == []


async def test_the_same_guess_counts_once_across_nodes(nodes: tuple[Probe, Probe]) -> None:
    first, second = nodes
    # One stale password tried on both nodes, many times: one failure, no ban.
    for _ in range(5):
        assert (await first.ask("login alice stale 203.0.113.66"))["result"] == "bad"
        assert (await second.ask("login alice stale 203.0.113.67"))["result"] == "bad"
    assert (await second.ask(f"login alice {PASSWORD} 192.0.2.200"))["result"] == "ok"


@pytest.mark.parametrize("answer", ["deny", "allow"])
async def test_redis_going_away_is_answered_as_configured_and_logged_once(
    private_redis: RedisServer,
    caplog: pytest.LogCaptureFixture,
    answer: str,
) -> None:
    config = LockoutConfig(
        storage_uri=private_redis.url, storage_timeout=0.5, on_storage_error=answer,  # type: ignore[arg-type]
    )
    policy = LockoutPolicy.open(config)
    attempt = Attempt("ldap", "203.0.113.66", "alice", "digest")
    try:
        assert isinstance(await policy.check(attempt), Allow)
        caplog.set_level(logging.INFO, logger="ratelimit")
        private_redis.stop()

        for _ in range(3):
            decision = await policy.check(attempt)
            if answer == "deny":
                assert decision == Delay(retry_after=5.0, scope="storage")
            else:
                assert isinstance(decision, Allow)
            # Outcomes cannot be counted; that is not an error for the door.
            assert await policy.record(attempt, Outcome.FAILURE) is None
        errors = [r for r in caplog.records if r.name == "ratelimit"]
        assert [r.levelno for r in errors] == [logging.ERROR], "one line per outage"
        assert "unreachable" in errors[0].getMessage()
        assert f"on_storage_error={answer}" in errors[0].getMessage()

        private_redis.start()
        await private_redis.ready()
        assert isinstance(await policy.check(attempt), Allow)
        lines = [r for r in caplog.records if r.name == "ratelimit"]
        assert [r.levelno for r in lines] == [logging.ERROR, logging.WARNING]
        assert "is back" in lines[1].getMessage()
        assert "6 policy calls" in lines[1].getMessage()
        # Counting works again.
        assert await policy.record(attempt, Outcome.FAILURE) is None
        assert [r.levelno for r in caplog.records if r.name == "ratelimit"] == [
            logging.ERROR, logging.WARNING,
        ]
    finally:
        await policy.close()


@pytest.mark.parametrize("answer", ["deny", "allow"])
async def test_a_door_during_a_redis_outage(
    private_redis: RedisServer, tmp_path: Path, answer: str
) -> None:
    """What a user sees at a real door (an LDAP bind over a socket) while Redis is away:
    deny answers the door's own 'try later' even to the right password, allow lets the right
    password in and still refuses a wrong one; both recover once Redis is back."""
    policy = LockoutPolicy.open(LockoutConfig(
        storage_uri=private_redis.url, storage_timeout=0.5,
        on_storage_error=answer,  # type: ignore[arg-type]
    ))
    try:
        async with wiki_directory(tmp_path, policy) as world:
            wiki = world.apps["wiki"]

            async def bind(password: str) -> tuple[int, str]:
                return await blocking(ldap_bind, wiki.server, wiki.port, OWNER, password)

            assert await bind(LDAP_PASSWORD) == LDAP.ok
            private_redis.stop()
            if answer == "deny":
                assert await bind(LDAP_PASSWORD) == LDAP.later
            else:
                assert await bind(LDAP_PASSWORD) == LDAP.ok
                assert await bind("not-the-password") == LDAP.wrong
            private_redis.start()
            await private_redis.ready()
            assert await bind(LDAP_PASSWORD) == LDAP.ok
    finally:
        await policy.close()
