"""Login-wall sessions: an opaque random token in a host-only cookie, the state server-side.

``SessionConfig`` holds the cookie and lifetime settings; ``WebSession`` is plain data whose
validity is computed from ``now`` (idle and absolute lifetimes); ``SessionStore`` is what the
wall needs from a backend. ``StoreSessions`` keeps sessions in the gateway's store (which
keeps only a SHA-256 of each token) behind an in-memory cache that the store's change feed
empties at once, on every node, when a session ends: logout, password change, deactivation
(``gateway.accounts`` ends them), app uninstall. ``sessions_redis.RedisSessions`` is the
other backend.

``last_seen`` is written back at most every ``touch_every`` seconds, not on every request:
the idle lifetime is hours, and a write per proxied request would cost more than the rest
of the request.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, final, runtime_checkable

from gateway.config.proxyauth import ProxyAuthConfig
from gateway.store.changes import Change, ChangeHub
from gateway.store.models import WebSession as StoredSession
from gateway.store.sessions import WebSessions, session_key

log = logging.getLogger(__name__)

# 32 random bytes (256 bits): guessing a live session is not a thing.
TOKEN_BYTES = 32
# Cookie values are at most this long; anything longer is not ours and is not looked up.
MAX_TOKEN_LENGTH = 64
# Sessions kept in the cache; the rest are read from the store again when used.
CACHE_ENTRIES = 100_000
SECURE_PREFIX = "__Host-"
# Recent cookie tokens and their store keys: hashing each request's cookie again costs more
# than the cache lookup it leads to.
_key_of = functools.lru_cache(maxsize=16_384)(session_key)


@dataclass(frozen=True)
class SessionConfig:
    cookie_name: str
    secure: bool
    idle: float
    lifetime: float

    @classmethod
    def from_config(cls, config: ProxyAuthConfig) -> SessionConfig:
        # "__Host-" makes the browser refuse the cookie unless it is Secure, host-only and
        # on Path=/, so a sibling subdomain cannot plant one (cookie tossing).
        prefix = SECURE_PREFIX if config.secure_cookies else ""
        return cls(
            cookie_name=prefix + config.cookie_name,
            secure=config.secure_cookies,
            idle=config.session_idle,
            lifetime=config.session_lifetime,
        )

    @property
    def flow_cookie_name(self) -> str:
        """The short-lived cookie of the login form (CSRF binding, the pending 2FA step)."""
        return self.cookie_name + "_login"

    @property
    def touch_every(self) -> float:
        return min(60.0, self.idle / 10)

    def cookie_attributes(self, max_age: float | None) -> dict[str, object]:
        """For ``StreamResponse.set_cookie``: HttpOnly, SameSite=Lax, Path=/, no Domain."""
        attributes: dict[str, object] = {
            "path": "/", "httponly": True, "samesite": "Lax", "secure": self.secure,
        }
        if max_age is not None:
            attributes["max_age"] = int(max_age)
        return attributes


@dataclass(frozen=True)
class WebSession:
    key: str
    user_id: str
    app_id: str | None
    created: float
    last_seen: float
    expires: float
    method: str

    def valid_at(self, now: float, config: SessionConfig) -> bool:
        return now < self.expires and now - self.last_seen < config.idle

    @classmethod
    def from_stored(cls, stored: StoredSession) -> WebSession:
        return cls(
            key=stored.id, user_id=stored.user_id, app_id=stored.app_id,
            created=stored.created_at, last_seen=stored.last_seen, expires=stored.expires_at,
            method=str(stored.data.get("method", "password")),
        )


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def plausible_token(value: str | None) -> bool:
    return bool(value) and len(value or "") <= MAX_TOKEN_LENGTH


@runtime_checkable
class SessionStore(Protocol):
    """What the wall needs from a session backend."""

    config: SessionConfig

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def create(self, *, user_id: str, app_id: str, method: str) -> str:
        """Start a session; answer the token for the cookie (never stored as is)."""
        ...

    async def find(self, token: str) -> WebSession | None:
        """The live session of ``token``, or None (unknown, ended, idle or too old)."""
        ...

    async def end(self, token: str) -> None: ...


class _Entry:
    """A cached session; ``last_seen`` moves here, ``persisted`` is when the store last heard."""

    __slots__ = ("last_seen", "persisted", "session")

    def __init__(self, session: WebSession, persisted: float) -> None:
        self.session = session
        self.last_seen = session.last_seen
        self.persisted = persisted

    def valid_at(self, now: float, config: SessionConfig) -> bool:
        return now < self.session.expires and now - self.last_seen < config.idle


@final
class StoreSessions:
    """Sessions in the gateway's store, cached in memory, ended through its change feed."""

    def __init__(
        self,
        sessions: WebSessions,
        changes: ChangeHub,
        config: SessionConfig,
        *,
        clock: Callable[[], float] = time.time,
        cache_entries: int = CACHE_ENTRIES,
    ) -> None:
        self.config = config
        self._sessions = sessions
        self._changes = changes
        self._clock = clock
        self._max = cache_entries
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        # Bumped by every change: a read that raced a logout must not cache its stale row.
        self._epoch = 0
        self._unsubscribe: Callable[[], None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self._unsubscribe = self._changes.subscribe(self.on_change)

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5.0)
        self._cache.clear()

    async def create(self, *, user_id: str, app_id: str, method: str) -> str:
        token = new_token()
        now = self._clock()
        expires = now + self.config.lifetime
        stored = await self._sessions.put(
            token, user_id=user_id, app_id=app_id, expires_at=expires, data={"method": method},
        )
        # Times from this backend's clock (the store stamps its own on the row).
        session = WebSession(stored.id, user_id, app_id, now, now, expires, method)
        self._remember(session, now, self._epoch)
        return token

    async def find(self, token: str) -> WebSession | None:
        if not plausible_token(token):
            return None
        now = self._clock()
        key = _key_of(token)
        entry = self._cache.get(key)
        if entry is None or not entry.valid_at(now, self.config):
            # Not cached, or idle here: another node may have seen it used since.
            epoch = self._epoch
            stored = await self._sessions.get(token)
            if stored is None:
                self._cache.pop(key, None)
                return None
            session = WebSession.from_stored(stored)
            if not session.valid_at(now, self.config):
                self._cache.pop(key, None)
                self._spawn(self._sessions.remove(token), "end an expired session")
                return None
            entry = self._remember(session, session.last_seen, epoch)
        else:
            self._cache.move_to_end(key)
        entry.last_seen = now
        if now - entry.persisted >= self.config.touch_every:
            entry.persisted = now
            self._spawn(self._sessions.touch(token, now), "record session use")
        return entry.session

    async def end(self, token: str) -> None:
        if not plausible_token(token):
            return
        self._cache.pop(_key_of(token), None)
        await self._sessions.remove(token)

    async def remove_expired(self) -> int:
        return await self._sessions.remove_expired(self._clock())

    def on_change(self, change: Change) -> None:
        """Subscriber for the store's change feed (this node's writes and every other's)."""
        if change.kind == "reset":
            self._epoch += 1
            self._cache.clear()
        elif change.kind == "session":
            self._epoch += 1
            scope, _, rest = change.key.partition(":")
            if scope == "user" and rest:
                self._drop(lambda s: s.user_id == rest)
            elif scope == "app" and rest:
                self._drop(lambda s: s.app_id == rest)
            else:
                self._cache.pop(change.key, None)
        elif change.kind == "user":
            # A removed user's rows go with it (ON DELETE CASCADE); the access check
            # refuses deactivated users on every request anyway.
            self._epoch += 1
            self._drop(lambda s: s.user_id == change.key)

    def _remember(self, session: WebSession, persisted: float, epoch: int) -> _Entry:
        entry = _Entry(session, persisted)
        if epoch != self._epoch:
            return entry
        self._cache[session.key] = entry
        self._cache.move_to_end(session.key)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return entry

    def _drop(self, matches: Callable[[WebSession], bool]) -> None:
        for key in [k for k, e in self._cache.items() if matches(e.session)]:
            del self._cache[key]

    def _spawn(self, job: Coroutine[Any, Any, object], what: str) -> None:
        async def run() -> None:
            try:
                await job
            except Exception as exc:
                log.warning("could not %s: %s", what, exc)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
