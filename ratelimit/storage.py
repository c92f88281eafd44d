"""Where counters and bans live, from one URI: ``memory://`` or ``redis://…``.

The counters are limits' own storage (``storage_from_string("async+…",
wrap_exceptions=True)``); the ban book sits beside them in the same place (a dict, or the
same Redis). Checked when opened, as limits' strategies check their storage: a URI naming a
backend without moving windows or without a ban book fails at start, not at the first login.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from limits.aio.storage import Storage
from limits.errors import ConfigurationError
from limits.storage import storage_from_string

from ratelimit.bans import BanBook, MemoryBanBook, RedisBanBook
from ratelimit.errors import UnsupportedStorage

# Every key the policy writes in a shared Redis starts with this, beside other users' keys.
KEY_PREFIX = "gateway-ratelimit"
_REDIS_SCHEMES = {"redis", "rediss", "redis+unix"}


@dataclass(frozen=True)
class PolicyStorage:
    counters: Storage
    bans: BanBook
    shared: bool

    async def close(self) -> None:
        await self.bans.close()
        # limits' Redis storage holds a client of its own; memory storage has nothing to close.
        bridge = getattr(self.counters, "bridge", None)
        client = getattr(bridge, "storage", None)
        if client is not None and hasattr(client, "aclose"):
            await client.aclose()


def describe(uri: str) -> str:
    """The URI without credentials, for logs and errors."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def open_storage(
    uri: str,
    *,
    clock: Callable[[], float],
    timeout: float = 1.0,
    password: str | None = None,
) -> PolicyStorage:
    """Counters and ban book for ``uri``; ``timeout`` bounds each Redis call (seconds).

    No connection is made here: an unreachable Redis shows at the first call, where the
    policy's ``on_storage_error`` answers for it.
    """
    scheme = urlsplit(uri).scheme.removeprefix("async+")
    if scheme == "memory":
        counters = _limits_storage("async+memory://")
        return PolicyStorage(counters, MemoryBanBook(clock), shared=False)
    if scheme in _REDIS_SCHEMES:
        plain = uri.removeprefix("async+")
        options: dict[str, float | str | bool] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
        }
        if password is not None:
            options["password"] = password
        counters = _limits_storage(
            "async+" + plain, implementation="redispy", key_prefix=KEY_PREFIX, **options
        )
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(
            plain.replace("redis+unix://", "unix://"), **options  # type: ignore[arg-type]
        )
        return PolicyStorage(counters, RedisBanBook(client, clock, f"{KEY_PREFIX}:block"), True)
    raise UnsupportedStorage(
        f"{describe(uri)}: the lockout policy needs memory:// or redis:// (moving windows "
        "and a ban book that can be listed)"
    )


def _limits_storage(uri: str, **options: float | str | bool) -> Storage:
    try:
        storage = storage_from_string(uri, wrap_exceptions=True, **options)
    except ConfigurationError as exc:
        raise UnsupportedStorage(f"{describe(uri)}: {exc}") from exc
    if not isinstance(storage, Storage):
        raise UnsupportedStorage(f"{describe(uri)}: not an async storage")
    return storage
