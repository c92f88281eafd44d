"""``gateway bans list|lift`` as a real process, against the admin ban routes on a real socket.

The admin routes are served by an aiohttp app on 127.0.0.1:0 holding a LockoutPolicy, and, at
the end, by a real ``gateway serve`` whose bans live in a shared Redis.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gateway.runtime.admin_bans import add_ban_routes, admin_token
from ratelimit import (
    Allow,
    Attempt,
    Banned,
    LockoutConfig,
    LockoutPolicy,
    NoLimits,
    Outcome,
    ScopeLimits,
)
from tests.services import free_port

# The redis-server fixtures (redis_url) come from there.
pytest_plugins = ["tests.redis_service"]

REPO = Path(__file__).resolve().parent.parent
CLI_TIMEOUT = 60.0
STARTUP_TIMEOUT = 60.0


@dataclass
class Admin:
    policy: LockoutPolicy
    base: str
    token: str
    config: Path

    async def gateway(self, *args: str) -> tuple[int, str, str]:
        """Run the real CLI in a subprocess (async: this loop keeps serving meanwhile)."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "-c", str(self.config), *args,
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        out, err = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


def write_config(tmp_path: Path, base: str) -> Path:
    port = base.rsplit(":", 1)[1]
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[runtime]\ndata_dir = "{tmp_path / "data"}"\n\n[admin]\nlisten = "127.0.0.1:{port}"\n'
    )
    return config


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    policy = LockoutPolicy.open(LockoutConfig(account=ScopeLimits(3, 3)))
    token = admin_token(tmp_path / "data")
    app = web.Application()
    add_ban_routes(app, policy, token)
    runner, base = await serve(app)
    try:
        yield Admin(policy, base, token, write_config(tmp_path, base))
    finally:
        await runner.cleanup()
        await policy.close()


async def ban_alice(policy: LockoutPolicy) -> None:
    for n in range(3):
        await policy.record(Attempt("smtp", "203.0.113.66", "alice", f"d{n}"), Outcome.FAILURE)
    assert isinstance(await policy.check(Attempt("smtp", "192.0.2.1", "alice")), Banned)


async def test_bans_list_shows_who_scope_why_and_until(admin: Admin) -> None:
    code, out, _ = await admin.gateway("bans", "list")
    assert (code, out.strip()) == (0, "no active bans")

    await ban_alice(admin.policy)
    code, out, err = await admin.gateway("bans", "list")
    assert code == 0, err
    header, row = out.strip().splitlines()
    assert header.split() == ["WHO", "SCOPE", "KIND", "WHY", "UNTIL", "(UTC)", "LEFT"]
    assert row.startswith("alice")
    assert "account" in row
    assert "3 failures in 300s (last at smtp)" in row

    code, out, err = await admin.gateway("bans", "list", "--json")
    assert code == 0, err
    listing = json.loads(out)
    assert listing["enabled"] is True
    [ban] = listing["bans"]
    assert ban["subject"] == "account:alice"
    assert (ban["who"], ban["scope"], ban["kind"], ban["door"]) == (
        "alice", "account", "ban", "smtp"
    )
    assert ban["failures"] == 3
    assert ban["until"].endswith("Z")
    assert 890 < ban["retry_after"] <= 900


async def test_bans_lift_through_the_running_endpoint_works_at_once(admin: Admin) -> None:
    await ban_alice(admin.policy)
    code, out, err = await admin.gateway("bans", "lift", "alice")
    assert code == 0, err
    assert "lifted the block on account:alice" in out
    assert isinstance(await admin.policy.check(Attempt("smtp", "192.0.2.1", "alice")), Allow)

    code, out, err = await admin.gateway("bans", "lift", "alice", "--json")
    assert code == 0, err
    assert json.loads(out) == {"subject": "account:alice", "lifted": 0}


async def test_the_cli_explains_an_endpoint_that_is_not_there(
    admin: Admin, tmp_path: Path
) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:1")
    admin.config = config
    code, _, err = await admin.gateway("bans", "list")
    assert code == 1
    assert "is `gateway serve` running?" in err

    other = tmp_path / "elsewhere"
    other.mkdir()
    admin.config = write_config(other, admin.base)
    code, _, err = await admin.gateway("bans", "lift", "alice")
    assert code == 2
    assert "no admin token" in err


async def test_the_ban_routes_want_the_token_and_post_for_a_lift(admin: Admin) -> None:
    await ban_alice(admin.policy)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{admin.base}/bans") as response:
            assert response.status == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        async with http.post(f"{admin.base}/bans/lift", json={"subject": "alice"},
                             headers=wrong) as response:
            assert response.status == 401
        good = {"Authorization": f"Bearer {admin.token}"}
        async with http.get(f"{admin.base}/bans/lift", headers=good) as response:
            assert response.status == 405
        async with http.post(f"{admin.base}/bans/lift", data=b"alice",
                             headers=good) as response:
            assert response.status == 400
    # Nothing above lifted the ban.
    assert isinstance(await admin.policy.check(Attempt("smtp", "192.0.2.1", "alice")), Banned)
    assert (admin.config.parent / "data" / "admin-token").stat().st_mode & 0o777 == 0o600


async def test_with_the_policy_off_the_endpoint_says_so(tmp_path: Path) -> None:
    app = web.Application()
    token = admin_token(tmp_path)
    add_ban_routes(app, NoLimits(), token)
    runner, base = await serve(app)
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            async with http.get(f"{base}/bans") as response:
                assert await response.json() == {"enabled": False, "bans": []}
            async with http.post(f"{base}/bans/lift", json={"subject": "x"}) as response:
                assert response.status == 409
    finally:
        await runner.cleanup()


async def test_bans_lift_against_a_running_gateway_serve_on_redis(
    tmp_path: Path, redis_url: str
) -> None:
    """The whole path: `gateway serve` (its admin endpoint) with bans in a shared Redis."""
    port = free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[runtime]\ndata_dir = "{tmp_path / "data"}"\n\n'
        f'[admin]\nlisten = "127.0.0.1:{port}"\n\n[demo]\nenabled = false\n\n'
        f'[ratelimit]\nstorage = "{redis_url}"\naccount_delay_after = 3\n'
        "account_ban_after = 3\n"
    )
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "-c", str(config), "serve",
        cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    # This node's policy shares the Redis: a ban it starts is the server's to list and lift.
    node = LockoutPolicy.open(LockoutConfig(storage_uri=redis_url, account=ScopeLimits(3, 3)))
    try:
        await wait_for_admin(f"http://127.0.0.1:{port}/healthz", server)
        await ban_alice(node)
        cli = Admin(node, f"http://127.0.0.1:{port}", "", config)
        code, out, err = await cli.gateway("bans", "list", "--json")
        assert code == 0, err
        assert [b["subject"] for b in json.loads(out)["bans"]] == ["account:alice"]
        code, out, err = await cli.gateway("bans", "lift", "alice", "--json")
        assert code == 0, err
        assert json.loads(out) == {"subject": "account:alice", "lifted": 1}
        assert isinstance(await node.check(Attempt("smtp", "192.0.2.1", "alice")), Allow)
    finally:
        await node.close()
        if server.returncode is None:
            server.terminate()
            try:
                await asyncio.wait_for(server.wait(), 30)
            except TimeoutError:
                server.kill()
                await server.wait()


async def wait_for_admin(url: str, server: asyncio.subprocess.Process) -> None:
    """Poll the admin endpoint until it answers, for at most STARTUP_TIMEOUT seconds."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while True:
            if server.returncode is not None:
                raise RuntimeError(f"gateway serve exited with {server.returncode}")
            try:
                async with http.get(url) as response:
                    if response.status in (200, 503):
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gateway serve did not answer on {url}")
            await asyncio.sleep(0.05)
