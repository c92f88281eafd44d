"""A stand-in gateway node for the tests: a real Portal with a LockoutPolicy, driven on stdin.

    python -m tests.ratelimit_probe --store URL --data-dir DIR --ratelimit redis://…

prints ``{"ready": true}``, then answers one JSON line per command line:

    login LOGIN PASSWORD SOURCE   -> {"result": "ok"|"bad"|"delayed"|"locked", ...}
    bans                          -> {"bans": ["account:alice", ...]}
    lift SUBJECT                  -> {"lifted": N}
    quit                          -> exits

Two of these on one Redis are two gateway nodes sharing counters and bans.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from gateway.audit import AuditLog
from gateway.auth import (
    Locked,
    LoginContext,
    LoginFailed,
    Portal,
    RateLimited,
    UserPassword,
    build_portal,
)
from gateway.auth.hashing import HashParams, PasswordHasher
from gateway.config import AuthConfig
from gateway.metrics import Metrics
from gateway.store import open_store
from ratelimit import LockoutConfig, LockoutPolicy, ScopeLimits

FAST = AuthConfig(argon2_memory_kib=1024, argon2_time_cost=1)
# Every loop here is bounded: a runaway test driver cannot keep a probe alive for ever.
MAX_COMMANDS = 10_000


async def answer(portal: Portal, policy: LockoutPolicy, words: list[str]) -> dict[str, Any]:
    if words[0] == "login" and len(words) == 4:
        _, login, password, source = words
        try:
            await portal.login(UserPassword(login, password, LoginContext("ldap", source)))
        except Locked as exc:
            return {"result": "locked", "scope": exc.scope, "retry_after": exc.retry_after}
        except RateLimited as exc:
            return {"result": "delayed", "scope": exc.scope, "retry_after": exc.retry_after}
        except LoginFailed as exc:
            return {"result": "bad", "reason": exc.reason}
        return {"result": "ok"}
    if words[0] == "bans":
        return {"bans": [b.subject.key for b in await policy.bans()]}
    if words[0] == "lift" and len(words) == 2:
        return {"lifted": await policy.lift(words[1])}
    return {"error": f"unknown command {words[0]!r}"}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--ratelimit", required=True)
    parser.add_argument("--account-ban-after", type=int, default=3)
    args = parser.parse_args()

    store = await open_store(args.store, data_dir=args.data_dir)
    hasher = PasswordHasher(
        HashParams(FAST.argon2_time_cost, FAST.argon2_memory_kib, FAST.argon2_parallelism)
    )
    config = LockoutConfig(
        storage_uri=args.ratelimit,
        account=ScopeLimits(args.account_ban_after, args.account_ban_after),
    )
    policy = LockoutPolicy.open(config)
    audit = AuditLog(store.audit, interval=3600)
    portal = await build_portal(
        FAST, store, audit=audit, metrics=Metrics(), policy=policy, hasher=hasher
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": True}), flush=True)
    try:
        for _ in range(MAX_COMMANDS):
            line = (await reader.readline()).decode()
            words = line.split()
            if not words or words[0] == "quit":
                break
            print(json.dumps(await answer(portal, policy, words)), flush=True)
    finally:
        await audit.close()
        await policy.close()
        hasher.close()
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
