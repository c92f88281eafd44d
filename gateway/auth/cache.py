"""A short-lived cache of verified logins, so repeated binds skip the slow hash.

Entries are keyed on a keyed hash (HMAC) of the secret, never the secret, and dropped at
once when the store says the user, their app passwords, their groups or the app changed,
on every node (the store's change feed carries other nodes' writes).
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from gateway.auth.identity import UserIdentity
from gateway.store.changes import Change


@dataclass(frozen=True, slots=True)
class _Entry:
    identity: UserIdentity
    app_id: str | None
    expires: float


class VerifiedCache:
    def __init__(
        self,
        key: bytes,
        *,
        ttl: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key = key
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        # Lists, not sets: a user has one entry or a few (one per app), and at 100 000
        # entries a one-element set's 216 bytes each add up; removal scans a handful.
        self._by_user: dict[str, list[bytes]] = {}
        self._by_app: dict[str, set[bytes]] = {}
        # Bumped by every invalidation. A login reads it before it looks the user up and
        # passes it to put(): a change that landed while the hash was being verified
        # (against the old secret) then keeps that stale result out of the cache.
        self._epoch = 0

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def enabled(self) -> bool:
        return self._ttl > 0 and self._max > 0

    def __len__(self) -> int:
        return len(self._entries)

    def digest(self, *parts: str) -> bytes:
        # One-shot HMAC (same value as hmac.new(...).digest(), without an object per call).
        return hmac.digest(self._key, "\0".join(parts).encode(), "sha256")

    def get(self, digest: bytes) -> UserIdentity | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            self._drop(digest)
            return None
        return entry.identity

    def put(
        self, digest: bytes, identity: UserIdentity, app_id: str | None, epoch: int | None = None
    ) -> None:
        """Remember a verified login; ``epoch`` is what ``self.epoch`` was when it began."""
        if not self.enabled or (epoch is not None and epoch != self._epoch):
            return
        if digest in self._entries:
            self._drop(digest)
        while len(self._entries) >= self._max:
            oldest = next(iter(self._entries))
            self._drop(oldest)
        self._entries[digest] = _Entry(identity, app_id, self._clock() + self._ttl)
        self._by_user.setdefault(identity.user_id, []).append(digest)
        if app_id is not None:
            self._by_app.setdefault(app_id, set()).add(digest)

    def forget_user(self, user_id: str) -> None:
        self._epoch += 1
        for digest in list(self._by_user.get(user_id, ())):
            self._drop(digest)

    def forget_app(self, app_id: str) -> None:
        self._epoch += 1
        for digest in list(self._by_app.get(app_id, ())):
            self._drop(digest)

    def clear(self) -> None:
        self._epoch += 1
        self._entries.clear()
        self._by_user.clear()
        self._by_app.clear()

    def on_change(self, change: Change) -> None:
        """Subscriber for the store's change feed."""
        if change.kind in ("user", "app_password"):
            self.forget_user(change.key)
        elif change.kind == "app":
            self.forget_app(change.key)
        elif change.kind in ("group", "reset"):
            # Group names ride in cached identities; group changes are rare, so start over.
            self.clear()

    def _drop(self, digest: bytes) -> None:
        entry = self._entries.pop(digest, None)
        if entry is None:
            return
        users = self._by_user.get(entry.identity.user_id)
        if users is not None:
            if digest in users:
                users.remove(digest)
            if not users:
                del self._by_user[entry.identity.user_id]
        if entry.app_id is not None:
            apps = self._by_app.get(entry.app_id)
            if apps is not None:
                apps.discard(digest)
                if not apps:
                    del self._by_app[entry.app_id]
