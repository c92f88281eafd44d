"""The verified cache follows changes made by another process, on both engines.

A probe process (tests/login_probe.py) shares the store with this test process. The test warms
the probe's cache, changes the store from here, and polls the probe until it refuses the old
secret: that must take under a second (SQLite: the change_log poll; PostgreSQL: NOTIFY).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.auth.hashing import HashParams, PasswordHasher
from gateway.store import Store
from gateway.store.models import User

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery-7f3a"
START_TIMEOUT = 30.0
ANSWER_TIMEOUT = 10.0
# The promise: a change made elsewhere is honoured within this many seconds.
PROPAGATION_LIMIT = 1.0
MAX_POLLS = 2_000


class Probe:
    """The probe process and its line protocol."""

    def __init__(self, process: asyncio.subprocess.Process, stderr: Path) -> None:
        self._process = process
        self._stderr = stderr

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, url: str, tmp_path: Path) -> AsyncIterator[Probe]:
        stderr = tmp_path / "probe.stderr"
        with stderr.open("wb") as err:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.login_probe", url,
                cwd=REPO, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=err,
            )
        probe = cls(process, stderr)
        try:
            ready = await probe._line(START_TIMEOUT)
            assert ready == "ready", f"probe said {ready!r}\n{probe.log()}"
            yield probe
        finally:
            await probe._stop()

    def log(self) -> str:
        return self._stderr.read_text(errors="replace")[-3000:]

    async def login(self, *words: str) -> tuple[str, str, int]:
        """(ok|fail, method or reason, verifications so far)."""
        assert self._process.stdin is not None
        self._process.stdin.write(("login " + " ".join(words) + "\n").encode())
        await self._process.stdin.drain()
        status, detail, verifies = (await self._line(ANSWER_TIMEOUT)).split()
        return status, detail, int(verifies)

    async def _line(self, timeout: float) -> str:
        assert self._process.stdout is not None
        try:
            raw = await asyncio.wait_for(self._process.stdout.readline(), timeout)
        except TimeoutError:
            raise AssertionError(f"probe silent for {timeout}s\n{self.log()}") from None
        if not raw:
            raise AssertionError(f"probe exited ({self._process.returncode})\n{self.log()}")
        return raw.decode().strip()

    async def _stop(self) -> None:
        process = self._process
        if process.returncode is None and process.stdin is not None:
            process.stdin.write(b"quit\n")
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


@dataclass
class Setup:
    store: Store
    user: User
    app_id: str
    app_password_id: str
    app_password: str
    new_hash: str


@pytest.fixture
async def setup(store: Store) -> Setup:
    hasher = PasswordHasher(HashParams(1, 1024, 1), workers=1)
    try:
        user = await store.users.add(
            username="alice", email="alice@example.com", password_hash=hasher.hash_now(PASSWORD)
        )
        app = await store.apps.add(location="wiki", domain="example.com", manifest={})
        app_password = secrets.token_hex(8)
        record = await store.app_passwords.add(
            user.id, "phone", app.id, hasher.hash_now(app_password)
        )
        new_hash = hasher.hash_now("new-" + PASSWORD)
        return Setup(store, user, app.id, record.id, app_password, new_hash)
    finally:
        hasher.close()


CHANGES: dict[str, tuple[Callable[[Setup], Awaitable[object]], bool, str]] = {
    # name: (the change, made from this process; which secret; the refusal expected)
    "password-change": (
        lambda s: s.store.users.set_password_hash(s.user.id, s.new_hash),
        False,
        "wrong_secret",
    ),
    "deactivation": (lambda s: s.store.users.update(s.user.id, active=False), False, "inactive"),
    "app-password-revoke": (
        lambda s: s.store.app_passwords.revoke(s.app_password_id), True, "wrong_secret"
    ),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
async def test_other_process_hears_the_change_within_a_second(
    setup: Setup,
    store_url: str,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
    change: tuple[Callable[[Setup], Awaitable[object]], bool, str],
) -> None:
    make_change, use_app_password, refusal = change
    secret = setup.app_password if use_app_password else PASSWORD
    words = ("alice", secret, setup.app_id, setup.app_id)

    async with Probe.running(store_url, tmp_path) as probe:
        status, method, hashed = await probe.login(*words)
        assert (status, method) == ("ok", "app_password" if use_app_password else "password")
        # Warm: the same login again is answered without hashing.
        assert await probe.login(*words) == ("ok", method, hashed)

        await make_change(setup)
        changed = time.monotonic()
        deadline = changed + PROPAGATION_LIMIT
        answer = await probe.login(*words)
        for _ in range(MAX_POLLS):
            if answer[0] != "ok" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.005)
            answer = await probe.login(*words)
        delay = time.monotonic() - changed

    record_property("propagation_seconds", round(delay, 4))
    assert answer[:2] == ("fail", refusal), (
        f"the probe still accepted the old secret {delay:.3f}s after the change: {answer}"
    )
    assert delay < PROPAGATION_LIMIT, f"took {delay:.3f}s (limit {PROPAGATION_LIMIT}s)"
    assert answer[2] > hashed, "the refusal came from a fresh verification"
