"""A second gateway process for tests: a portal on a shared store, driven over stdin/stdout.

    python -m tests.login_probe STORE_URL

It opens the store, starts its change feed (so it hears other processes' writes), builds the
portal with cheap argon2 parameters and the verified cache on, prints ``ready``, then answers
one line per command:

    login LOGIN PASSWORD [APP_ID [APP_PASSWORDS_FOR]]
        -> ok METHOD VERIFIES   |   fail REASON VERIFIES
    quit

VERIFIES is how many password verifications the probe has run so far, so the caller can
tell a cache hit (unchanged) from a login that hashed. Passwords must not contain spaces.
Nothing else is written to stdout; logs go to stderr.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from gateway.audit import AuditLog
from gateway.auth import LoginContext, LoginFailed, PasswordHasher, UserPassword, build_portal
from gateway.auth.hashing import HashParams
from gateway.config import AuthConfig
from gateway.metrics import Metrics
from gateway.store import open_store

CONFIG = AuthConfig(argon2_memory_kib=1024, argon2_time_cost=1, cache_ttl=600.0)
# Commands come from a test; a runaway caller still ends the probe.
MAX_COMMANDS = 100_000


class CountingHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__(HashParams(CONFIG.argon2_time_cost, CONFIG.argon2_memory_kib, 1))
        self.verifies = 0

    async def verify(self, password: str, stored: str | None) -> bool:
        self.verifies += 1
        return await super().verify(password, stored)


def answer(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def serve(url: str) -> None:
    store = await open_store(url)
    hasher = CountingHasher()
    audit = AuditLog(store.audit)
    try:
        await store.db.start_change_feed()
        portal = await build_portal(CONFIG, store, audit=audit, metrics=Metrics(), hasher=hasher)
        answer("ready")
        for _ in range(MAX_COMMANDS):
            line = await asyncio.to_thread(sys.stdin.readline)
            words = line.split()
            if not words or words[0] == "quit":
                break
            if words[0] != "login" or not 3 <= len(words) <= 5:
                answer(f"error unknown command {words[0]!r}")
                continue
            login, password, *rest = words[1:]
            app_id = rest[0] if rest else None
            app_passwords_for = rest[1] if len(rest) > 1 else None
            creds = UserPassword(
                login, password, LoginContext("ldap", "127.0.0.1", app_id),
                app_passwords_for=app_passwords_for,
            )
            try:
                identity = await portal.login(creds)
            except LoginFailed as exc:
                answer(f"fail {exc.reason} {hasher.verifies}")
            else:
                answer(f"ok {getattr(identity, 'method', '-')} {hasher.verifies}")
    finally:
        await audit.close()
        hasher.close()
        await store.close()


def main() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.login_probe STORE_URL")
    asyncio.run(serve(sys.argv[1]))


if __name__ == "__main__":
    main()
