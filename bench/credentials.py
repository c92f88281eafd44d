"""How fast the one credential check answers, and what the verified cache costs in memory.

    .venv/bin/python bench/credentials.py            # the full run (about two minutes)
    .venv/bin/python bench/credentials.py --quick    # smaller counts, to try the script

Prints one table of verified logins per second through ``Portal.login`` (store lookup,
argon2id verify, access check, audit, metrics), with CONCURRENCY logins in flight:

- cold: every login hashes (the verified cache is off), with the default argon2id parameters;
- warm: every login is a cache hit;

on SQLite and on PostgreSQL (a private cluster started like the tests do, tests/services.py),
and the resident memory a process gains holding a store of 10 000 users and a warm cache of
all of them (VmRSS from /proc/self/status, measured in a fresh child process per engine).
Every phase is bounded by a count and by a time limit.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gateway.audit import AuditLog  # noqa: E402
from gateway.auth import LoginContext, Portal, UserPassword, build_portal, hasher_for  # noqa: E402
from gateway.config import AuthConfig  # noqa: E402
from gateway.metrics import Metrics  # noqa: E402
from gateway.store import Store, open_store  # noqa: E402
from tests.services import PostgresCluster, find_server_bindir, scratch_database  # noqa: E402

CONCURRENCY = 32
PASSWORD = "correct-horse-battery-7f3a"
DEFAULTS = AuthConfig()
# Cheap hashes for the memory run only: what the cache keeps does not depend on them, and
# warming 10 000 entries with the default cost would take minutes.
CHEAP = AuthConfig(argon2_memory_kib=1024, argon2_time_cost=1)
MEMORY_TIMEOUT = 300.0
PHASE_TIMEOUT = 240.0
T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    users: int = 64
    cold_logins: int = 400
    cold_seconds: float = 15.0
    warm_logins: int = 300_000
    warm_seconds: float = 5.0
    memory_users: int = 10_000


QUICK = Limits(users=16, cold_logins=64, cold_seconds=5.0, warm_logins=20_000,
               warm_seconds=1.0, memory_users=1_000)


@dataclass(frozen=True)
class Run:
    engine: str
    mode: str
    logins: int
    failures: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.logins / self.seconds if self.seconds else 0.0

    def percentile(self, q: int) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] * 1000 if self.latencies else 0.0
        return statistics.quantiles(self.latencies, n=100)[q - 1] * 1000


async def bounded(work: Awaitable[T], seconds: float, what: str) -> T:
    """``work``, or a RuntimeError after ``seconds`` with every task's stack on stderr."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        for other in asyncio.all_tasks():
            other.print_stack(limit=6, file=sys.stderr)
        task.cancel()
        raise RuntimeError(f"{what} took over {seconds:.0f}s (task stacks above)")
    return task.result()


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


@asynccontextmanager
async def portal_on(store: Store, config: AuthConfig) -> AsyncIterator[Portal]:
    hasher = hasher_for(config)
    audit = AuditLog(store.audit)
    portal = await build_portal(config, store, audit=audit, metrics=Metrics(), hasher=hasher)
    try:
        yield portal
    finally:
        await audit.close()
        hasher.close()


async def add_users(store: Store, count: int, password_hash: str, prefix: str) -> list[str]:
    names = [f"{prefix}{i:05d}" for i in range(count)]
    for start in range(0, count, 50):
        await asyncio.gather(*(
            store.users.add(username=n, email=f"{n}@example.com", password_hash=password_hash)
            for n in names[start:start + 50]
        ))
    return names


async def hammer(
    portal: Portal, names: list[str], engine: str, mode: str, max_logins: int, seconds: float
) -> Run:
    """CONCURRENCY workers log in round-robin until ``max_logins`` or ``seconds``."""
    context = LoginContext("ldap", "127.0.0.1")
    latencies: list[float] = []
    failures = 0
    per_worker = -(-max_logins // CONCURRENCY)
    started = time.perf_counter()
    deadline = started + seconds

    async def worker(offset: int) -> None:
        nonlocal failures
        for i in range(per_worker):
            if time.perf_counter() > deadline:
                return
            name = names[(offset + i * CONCURRENCY) % len(names)]
            begun = time.perf_counter()
            try:
                await portal.login(UserPassword(name, PASSWORD, context))
            except Exception:
                failures += 1
            latencies.append(time.perf_counter() - begun)
            # A cache hit never suspends; a server would read the next request from its
            # socket here, letting other tasks (the audit writer) run.
            await asyncio.sleep(0)

    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    return Run(engine, mode, len(latencies) - failures, failures, elapsed, latencies)


async def throughput(engine: str, url: str, limits: Limits) -> list[Run]:
    store = await open_store(url)
    try:
        hasher = hasher_for(DEFAULTS)
        try:
            password_hash = await hasher.hash(PASSWORD)
        finally:
            hasher.close()
        names = await add_users(store, limits.users, password_hash, "user")
        cold_config = AuthConfig(cache_ttl=0.0)
        async with portal_on(store, cold_config) as portal:
            cold = await hammer(
                portal, names, engine, "cold", limits.cold_logins, limits.cold_seconds
            )
        async with portal_on(store, DEFAULTS) as portal:
            for name in names:
                await portal.login(UserPassword(name, PASSWORD, LoginContext("ldap")))
            warm = await hammer(
                portal, names, engine, "warm", limits.warm_logins, limits.warm_seconds
            )
        return [cold, warm]
    finally:
        await store.close()


# -- memory, in a child process so the baseline is clean -------------------------------------


async def memory_child(url: str, users: int) -> dict[str, float]:
    store = await open_store(url)
    try:
        async with portal_on(store, CHEAP) as portal:
            password_hash = portal.verifier.hasher.hash_now(PASSWORD)
            # One login first, so thread pools, arenas and statement caches exist already.
            await add_users(store, 1, password_hash, "warmup")
            await portal.login(UserPassword("warmup00000", PASSWORD, LoginContext("ldap")))
            gc.collect()
            baseline = rss_kib()

            began = time.perf_counter()
            names = await add_users(store, users, password_hash, "user")
            add_seconds = time.perf_counter() - began
            gc.collect()
            with_users = rss_kib()

            began = time.perf_counter()
            run = await hammer(portal, names, "", "fill", users, 600.0)
            fill_seconds = time.perf_counter() - began
            gc.collect()
            with_cache = rss_kib()
            cached = len(portal.verifier.cache)
        return {
            "baseline_kib": baseline, "users_kib": with_users - baseline,
            "cache_kib": with_cache - with_users, "cached": cached, "failures": run.failures,
            "add_seconds": add_seconds, "fill_seconds": fill_seconds,
        }
    finally:
        await store.close()


def memory(engine: str, url: str, limits: Limits) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--memory-child", url, str(limits.memory_users)],
        stdout=subprocess.PIPE, text=True, timeout=MEMORY_TIMEOUT, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory run on {engine} failed (its stderr is above)")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- the report ---------------------------------------------------------------------------------


def report(runs: list[Run], mem: dict[str, dict[str, float]], limits: Limits) -> None:
    d = DEFAULTS
    print(
        f"credential check: Portal.login over UserPassword, {CONCURRENCY} logins in flight, "
        f"audit on, no rate limit\nargon2id defaults: time_cost={d.argon2_time_cost}, "
        f"memory={d.argon2_memory_kib} KiB, parallelism={d.argon2_parallelism}, "
        f"hash_workers={d.hash_workers}; {limits.users} users\n"
        f"host: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.machine()}, "
        f"load average at the end {Path('/proc/loadavg').read_text().split()[0]}"
    )
    print()
    print(f"{'engine':<11} {'mode':<5} {'logins':>8} {'fail':>5} {'seconds':>8} "
          f"{'logins/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for r in runs:
        print(f"{r.engine:<11} {r.mode:<5} {r.logins:>8} {r.failures:>5} {r.seconds:>8.2f} "
              f"{r.rate:>10.1f} {r.percentile(50):>8.2f} {r.percentile(99):>8.2f}")
    print("cold: cache off, every login verifies argon2id; warm: every login is a cache hit")
    print()
    n = limits.memory_users
    print(f"memory: RSS growth of a fresh process (VmRSS), {n} users, cache warmed by {n} "
          f"logins\n(argon2id time_cost={CHEAP.argon2_time_cost}, memory="
          f"{CHEAP.argon2_memory_kib} KiB for this part only, so the warm-up takes seconds; "
          f"the cache keeps no hash)")
    print(f"{'engine':<11} {'baseline MiB':>12} {'+users MiB':>10} {'+cache MiB':>10} "
          f"{'cached':>7} {'per 10k users MiB':>18} {'add s':>6} {'warm s':>7}")
    for engine, m in mem.items():
        per_10k = (m["users_kib"] + m["cache_kib"]) / 1024 * 10_000 / n
        print(f"{engine:<11} {m['baseline_kib'] / 1024:>12.1f} {m['users_kib'] / 1024:>10.1f} "
              f"{m['cache_kib'] / 1024:>10.1f} {int(m['cached']):>7} {per_10k:>18.1f} "
              f"{m['add_seconds']:>6.1f} {m['fill_seconds']:>7.1f}")
    print("+users: after adding the users to the store (SQLite's page cache lives in this "
          "process; PostgreSQL's in the server); +cache: after one verified login each")


async def main(limits: Limits) -> None:
    runs: list[Run] = []
    mem: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-credentials-") as tmp:
        runs += await bounded(
            throughput("sqlite", f"sqlite:///{tmp}/throughput.db", limits), PHASE_TIMEOUT,
            "sqlite throughput",
        )
        mem["sqlite"] = memory("sqlite", f"sqlite:///{tmp}/memory.db", limits)

    bindir = find_server_bindir()
    if bindir is None:
        print("no PostgreSQL server binaries (initdb): PostgreSQL rows skipped", file=sys.stderr)
    else:
        cluster = PostgresCluster(bindir)
        try:
            cluster.start()
            await cluster.ready()
            async with scratch_database(cluster.url) as url:
                runs += await bounded(
                    throughput("postgresql", url, limits), PHASE_TIMEOUT, "postgresql throughput"
                )
            async with scratch_database(cluster.url) as url:
                mem["postgresql"] = memory("postgresql", url, limits)
        finally:
            cluster.stop()
    report(runs, mem, limits)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, shorter limits")
    parser.add_argument("--memory-child", nargs=2, metavar=("URL", "USERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        url, users = args.memory_child
        result = asyncio.run(bounded(memory_child(url, int(users)), PHASE_TIMEOUT, "memory"))
        print(json.dumps(result))
    else:
        asyncio.run(main(QUICK if args.quick else Limits()))
