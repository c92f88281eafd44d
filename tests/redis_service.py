"""A private redis-server for the tests (and the benchmark): loopback only, no persistence.

``RedisServer`` runs one on a free port in a temp dir; ``stop()`` and ``start()`` again keep
the port, so a test can take Redis away and bring it back. Fixtures: ``redis_server`` (one
per session) and ``redis_url`` (that server, emptied for each test). ``private_redis`` is a
server of the test's own, for tests that stop it. Import the fixtures into a test module:
``from tests.redis_service import redis_server, redis_url  # noqa: F401``.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio
import redis.exceptions

from tests.services import free_port

STARTUP_TIMEOUT = 20.0


def find_redis_server() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )


class RedisServer:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="gateway-redis-"))
        self.log = self.root / "redis.log"
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.root),
            "--logfile", str(self.log), "--daemonize", "no",
        ]
        self._process = subprocess.Popen(args, cwd=self.root, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.STDOUT)

    async def ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Return once PING answers; raise with the log if it never does."""
        deadline = time.monotonic() + timeout
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited at start:\n{self._log_tail()}")
            client = redis.asyncio.Redis.from_url(self.url, socket_connect_timeout=1)
            try:
                if await client.ping():
                    return
            except (OSError, redis.exceptions.RedisError):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server not ready after {timeout:.0f}s:\n{self._log_tail()}"
                    ) from None
                await asyncio.sleep(0.02)
            finally:
                await client.aclose()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    async def flush(self) -> None:
        client = redis.asyncio.Redis.from_url(self.url, socket_connect_timeout=2)
        try:
            await client.flushall()
        finally:
            await client.aclose()

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _binary() -> str:
    binary = find_redis_server()
    if binary is None:
        pytest.fail(
            "no redis-server on PATH: install the redis-server package (scripts/install --test "
            "does)"
        )
    return binary


async def started_redis() -> RedisServer:
    server = RedisServer(_binary())
    server.start()
    try:
        await server.ready()
    except BaseException:
        server.remove()
        raise
    return server


@pytest.fixture(scope="session")
async def redis_server() -> AsyncIterator[RedisServer]:
    server = await started_redis()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
async def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied: each test starts with no counters and no bans."""
    await redis_server.flush()
    return redis_server.url


@pytest.fixture
async def private_redis() -> AsyncIterator[RedisServer]:
    """A Redis of this test's own, which it may stop and start again on the same port."""
    server = await started_redis()
    try:
        yield server
    finally:
        server.remove()
