"""What the lockout policy costs: decisions per second, and latency added to a login.

    .venv/bin/python bench/ratelimit.py            # the full run (well under a minute)
    .venv/bin/python bench/ratelimit.py --quick    # smaller counts, to try the script

Starts a private redis-server on a free loopback port (tests/redis_service.py; needs the
redis-server package) and prints, side by side for memory:// and redis://:

- check/s: ``policy.check`` over 1 000 accounts and 1 000 sources, CONCURRENCY in flight;
- failure/s: ``policy.record(FAILURE)`` with distinct guesses (the most expensive path:
  dedup marker, two moving windows, sometimes a block written), CONCURRENCY in flight;
- login p50/p99: ``Portal.login`` one at a time with a warm verified cache (no argon2 work),
  with NoLimits and with the policy, and the difference: the latency the policy adds.

Every phase is bounded by a count and by a time limit.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gateway.audit import AuditLog  # noqa: E402
from gateway.auth import LoginContext, UserPassword, build_portal  # noqa: E402
from gateway.auth.hashing import HashParams, PasswordHasher  # noqa: E402
from gateway.config import AuthConfig  # noqa: E402
from gateway.metrics import Metrics  # noqa: E402
from gateway.store import open_store  # noqa: E402
from ratelimit import (  # noqa: E402
    Attempt,
    AttemptPolicy,
    LockoutConfig,
    LockoutPolicy,
    NoLimits,
    Outcome,
    ScopeLimits,
)
from tests.redis_service import RedisServer, find_redis_server  # noqa: E402

CONCURRENCY = 32
PASSWORD = "correct-horse-battery-7f3a"
FAST = AuthConfig(argon2_memory_kib=1024, argon2_time_cost=1)
POOL = 1000


@dataclass(frozen=True)
class Limits:
    checks: int = 50_000
    failures: int = 20_000
    logins: int = 5_000
    seconds: float = 8.0


QUICK = Limits(checks=5_000, failures=2_000, logins=500, seconds=2.0)


async def rate(op: Callable[[int], Awaitable[object]], count: int, seconds: float) -> float:
    """Operations per second with CONCURRENCY workers, stopping at ``count`` or ``seconds``."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        nonlocal done
        i = offset
        while done < count and time.perf_counter() < deadline:
            await op(i)
            done += 1
            i += CONCURRENCY

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
    return done / (time.perf_counter() - started)


def bench_config(uri: str) -> LockoutConfig:
    # High thresholds: the benchmark measures counting, not a wall of refusals.
    return LockoutConfig(
        storage_uri=uri, source=ScopeLimits(10_000, 10_000), account=ScopeLimits(10_000, 10_000)
    )


async def decisions(uri: str, limits: Limits) -> tuple[float, float]:
    policy = LockoutPolicy.open(bench_config(uri))
    try:
        def attempt(i: int) -> Attempt:
            return Attempt("ldap", f"10.{(i // 256) % 4}.{i % 256}.1", f"user{i % POOL}",
                           f"guess-{i}")

        async def failure(i: int) -> object:
            return await policy.record(attempt(i), Outcome.FAILURE)

        async def check(i: int) -> object:
            return await policy.check(attempt(i))

        fails = await rate(failure, limits.failures, limits.seconds)
        checks = await rate(check, limits.checks, limits.seconds)
        return checks, fails
    finally:
        await policy.close()


async def login_latency(policy: AttemptPolicy, tmp: Path, name: str,
                        limits: Limits) -> list[float]:
    store = await open_store(f"sqlite:///{tmp / (name + '.db')}", data_dir=tmp)
    hasher = PasswordHasher(
        HashParams(FAST.argon2_time_cost, FAST.argon2_memory_kib, FAST.argon2_parallelism)
    )
    audit = AuditLog(store.audit)
    try:
        await store.users.add(username="alice", email="alice@example.com",
                              password_hash=hasher.hash_now(PASSWORD))
        portal = await build_portal(FAST, store, audit=audit, metrics=Metrics(), policy=policy,
                                    hasher=hasher)
        creds = UserPassword("alice", PASSWORD, LoginContext("ldap", "198.51.100.7"))
        for _ in range(50):  # warm: the verified cache, the store's statements, the policy
            await portal.login(creds)
        times: list[float] = []
        deadline = time.perf_counter() + limits.seconds
        while len(times) < limits.logins and time.perf_counter() < deadline:
            started = time.perf_counter()
            await portal.login(creds)
            times.append(time.perf_counter() - started)
        return times
    finally:
        await audit.close()
        hasher.close()
        await store.close()


def quantile(times: list[float], q: float) -> float:
    return statistics.quantiles(times, n=100)[int(q * 100) - 1] * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    limits = QUICK if parser.parse_args().quick else Limits()
    binary = find_redis_server()
    if binary is None:
        sys.exit("bench/ratelimit.py: needs redis-server (apt-get install redis-server)")
    redis = RedisServer(binary)
    redis.start()
    try:
        await redis.ready()
        print(f"# {platform.python_implementation()} {platform.python_version()}, "
              f"{platform.machine()}; concurrency {CONCURRENCY}; {limits}")
        storages = {"memory://": "memory://", "redis://": redis.url}
        rows: dict[str, tuple[float, float]] = {}
        for label, uri in storages.items():
            rows[label] = await decisions(uri, limits)
        with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
            base = await login_latency(NoLimits(), Path(tmp), "nolimits", limits)
            latency: dict[str, list[float]] = {}
            for label, uri in storages.items():
                await redis.flush()
                policy = LockoutPolicy.open(bench_config(uri))
                try:
                    latency[label] = await login_latency(policy, Path(tmp), label[:5], limits)
                finally:
                    await policy.close()
        p50, p99 = quantile(base, 0.5), quantile(base, 0.99)
        print(f"\nPortal.login, warm cache, one at a time, NoLimits: p50 {p50:.0f} µs, "
              f"p99 {p99:.0f} µs ({len(base)} logins)\n")
        print(f"{'storage':<10} {'check/s':>9} {'failure/s':>10} {'login p50':>10} "
              f"{'p99':>8} {'added p50':>10} {'added p99':>10}")
        for label, (checks, fails) in rows.items():
            times = latency[label]
            q50, q99 = quantile(times, 0.5), quantile(times, 0.99)
            print(f"{label:<10} {checks:>9.0f} {fails:>10.0f} {q50:>8.0f}µs {q99:>6.0f}µs "
                  f"{q50 - p50:>+8.0f}µs {q99 - p99:>+8.0f}µs")
    finally:
        redis.remove()


if __name__ == "__main__":
    asyncio.run(main())
