"""Sessions in Redis, for several gateway nodes that share one (``session_storage =
"redis://…"``).

Each session is a hash under ``<prefix>s:<sha256 of token>`` that Redis expires at the
session's absolute end; ``<prefix>u:<user id>`` and ``<prefix>a:<app id>`` index them so a
password change, a deactivation or an uninstall can end them all. Nothing is cached in the
process: every node reads Redis (one HGETALL on loopback is well under a millisecond), so a
logout on one node holds on all of them at once. The store's change feed still tells every
node when to end a user's sessions (``gateway.accounts`` announces it) or when an app is
gone, and each node does so; the deletes are idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, cast, final

import redis.asyncio as redis_asyncio

from gateway.store import NotFound
from gateway.store.apps import Apps
from gateway.store.changes import Change, ChangeHub
from gateway.store.sessions import session_key
from proxyauth.sessions import SessionConfig, WebSession, new_token, plausible_token

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "gateway:proxyauth:"


@final
class RedisSessions:
    def __init__(
        self,
        url: str,
        changes: ChangeHub,
        config: SessionConfig,
        *,
        password: str | None = None,
        apps: Apps | None = None,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._url = url
        self._password = password
        self._apps = apps
        self._changes = changes
        self._prefix = prefix
        self._clock = clock
        self._redis: redis_asyncio.Redis | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def _client(self) -> redis_asyncio.Redis:
        if self._redis is None:
            raise RuntimeError("RedisSessions.open() has not run")
        return self._redis

    async def open(self) -> None:
        client = redis_asyncio.from_url(
            self._url, password=self._password, decode_responses=True,
            socket_connect_timeout=5, socket_timeout=5,
        )
        try:
            # Fail at start, naming the backend, rather than on the first login.
            await client.ping()
        except Exception:
            await client.aclose()
            raise
        self._redis = client
        self._unsubscribe = self._changes.subscribe(self.on_change)

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5.0)
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    def _session(self, key: str) -> str:
        return f"{self._prefix}s:{key}"

    def _user(self, user_id: str) -> str:
        return f"{self._prefix}u:{user_id}"

    def _app(self, app_id: str) -> str:
        return f"{self._prefix}a:{app_id}"

    async def create(self, *, user_id: str, app_id: str, method: str) -> str:
        token = new_token()
        key = session_key(token)
        now = self._clock()
        expires = now + self.config.lifetime
        ttl = int(self.config.lifetime) + 1
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(self._session(key), mapping={
                "user_id": user_id, "app_id": app_id, "created": repr(now),
                "last_seen": repr(now), "expires": repr(expires), "method": method,
            })
            pipe.pexpireat(self._session(key), int(expires * 1000))
            # The indexes outlive any session they list; stale members are harmless.
            pipe.sadd(self._user(user_id), key)
            pipe.expire(self._user(user_id), ttl)
            pipe.sadd(self._app(app_id), key)
            pipe.expire(self._app(app_id), ttl)
            await pipe.execute()
        return token

    async def find(self, token: str) -> WebSession | None:
        if not plausible_token(token):
            return None
        key = session_key(token)
        fields = cast(dict[str, str], await self._client.hgetall(self._session(key)))
        if not fields:
            return None
        try:
            session = WebSession(
                key=key, user_id=fields["user_id"], app_id=fields.get("app_id") or None,
                created=float(fields["created"]), last_seen=float(fields["last_seen"]),
                expires=float(fields["expires"]), method=fields.get("method", "password"),
            )
        except (KeyError, ValueError):
            log.warning("dropping a malformed session record")
            await self._client.delete(self._session(key))
            return None
        now = self._clock()
        if not session.valid_at(now, self.config):
            await self._client.delete(self._session(key))
            return None
        if now - session.last_seen >= self.config.touch_every:
            await self._client.hset(self._session(key), "last_seen", repr(now))
        return session

    async def end(self, token: str) -> None:
        if not plausible_token(token):
            return
        key = session_key(token)
        await self._client.delete(self._session(key))

    async def end_for_user(self, user_id: str) -> int:
        return await self._end_indexed(self._user(user_id))

    async def end_for_app(self, app_id: str) -> int:
        return await self._end_indexed(self._app(app_id))

    async def _end_indexed(self, index: str) -> int:
        keys = cast(set[str], await self._client.smembers(index))
        if not keys:
            return 0
        ended: int = await self._client.delete(*(self._session(k) for k in keys), index)
        return max(0, ended - 1)

    async def _end_if_uninstalled(self, app_id: str) -> int:
        if self._apps is None:
            return 0
        try:
            await self._apps.get(app_id)
        except NotFound:
            return await self.end_for_app(app_id)
        return 0

    def on_change(self, change: Change) -> None:
        if change.kind == "app":
            # The store announces an uninstall's sessions only when it held them itself.
            self._spawn(self._end_if_uninstalled(change.key), f"end the sessions of {change.key}")
        elif change.kind == "session":
            scope, _, rest = change.key.partition(":")
            if scope == "user" and rest:
                self._spawn(self.end_for_user(rest), f"end the sessions of {rest}")
            elif scope == "app" and rest:
                self._spawn(self.end_for_app(rest), f"end the sessions of app {rest}")

    def _spawn(self, job: Coroutine[Any, Any, int], what: str) -> None:
        async def run() -> None:
            try:
                await job
            except Exception as exc:
                log.error("could not %s in Redis: %s", what, exc)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
