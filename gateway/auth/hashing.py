"""Password hashes: argon2id for new ones, Cloudron's PBKDF2-SHA1 verified for imports.

Hashing is slow on purpose, so it runs on a small thread pool (argon2-cffi and hashlib
release the GIL) and never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from passlib.hash import argon2

# Cloudron (E.3): PBKDF2-HMAC-SHA1, 10 000 rounds, a 512-*byte* key, a 64-byte salt, both hex.
CLOUDRON_SCHEME = "cloudron-pbkdf2-sha1"
CLOUDRON_ROUNDS = 10_000
CLOUDRON_KEY_BYTES = 512


@dataclass(frozen=True)
class HashParams:
    time_cost: int = 2
    memory_kib: int = 19456
    parallelism: int = 1


def cloudron_hash(password: str, salt: bytes) -> str:
    """The stored form of a Cloudron hash, as ``gateway user import`` writes it."""
    key = hashlib.pbkdf2_hmac("sha1", password.encode(), salt, CLOUDRON_ROUNDS, CLOUDRON_KEY_BYTES)
    return f"{CLOUDRON_SCHEME}${salt.hex()}${key.hex()}"


def from_cloudron(password_hex: str, salt_hex: str) -> str:
    """Wrap the ``password`` and ``salt`` columns of a Cloudron users row for import."""
    bytes.fromhex(password_hex)
    bytes.fromhex(salt_hex)
    return f"{CLOUDRON_SCHEME}${salt_hex.lower()}${password_hex.lower()}"


class PasswordHasher:
    def __init__(self, params: HashParams = HashParams(), *, workers: int = 2) -> None:
        self._handler = argon2.using(
            type="ID",
            rounds=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
        )
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hash")
        # Verified against when the account is unknown, so "no such user" costs what
        # "wrong password" costs and timing tells nothing.
        self._decoy = self._handler.hash(secrets.token_hex(16))

    async def hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.hash_now, password)

    def hash_now(self, password: str) -> str:
        return str(self._handler.hash(password))

    async def verify(self, password: str, stored: str | None) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._verify, password, stored)

    def _verify(self, password: str, stored: str | None) -> bool:
        if stored is None:
            self._handler.verify(password, self._decoy)
            return False
        if stored.startswith(CLOUDRON_SCHEME + "$"):
            try:
                _, salt_hex, key_hex = stored.split("$", 2)
                salt = bytes.fromhex(salt_hex)
            except ValueError:
                # A damaged import verifies nothing; it must not turn into a server error.
                return False
            key = hashlib.pbkdf2_hmac(
                "sha1", password.encode(), salt, CLOUDRON_ROUNDS, CLOUDRON_KEY_BYTES
            )
            return hmac.compare_digest(key.hex(), key_hex.lower())
        if stored.startswith("$argon2"):
            try:
                return bool(self._handler.verify(password, stored))
            except ValueError:
                return False
        return False

    def needs_rehash(self, stored: str) -> bool:
        """Imported or weaker hashes are replaced after the next successful login."""
        if not stored.startswith("$argon2id"):
            return True
        return bool(self._handler.needs_update(stored))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
