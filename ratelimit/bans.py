"""The ban book: who is blocked, why, since and until — records you can list and lift.

A block is a ``Ban`` record per subject (``source:<network>`` or ``account:<name>``). Its
``kind`` is ``ban`` (the temporary ban) or ``delay`` (the short wait before it); a subject has
at most one, and a delay never replaces a ban. The book lives beside the counters: a dict
for ``memory://`` (this process only), Redis hashes with a TTL for ``redis://`` (every node).
A record's ``until`` is compared with the policy's clock; the TTL only collects garbage.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from ratelimit.errors import StorageUnavailable
from ratelimit.sources import is_address

Kind = Literal["ban", "delay"]
SubjectScope = Literal["source", "account"]
# What putting a block did: stored where no ban was, replaced (extended) a ban, or kept
# the block already there because it lasts longer.
PutResult = Literal["new", "extended", "kept"]


@dataclass(frozen=True, order=True)
class Subject:
    scope: SubjectScope
    value: str

    @property
    def key(self) -> str:
        return f"{self.scope}:{self.value}"

    @classmethod
    def parse(cls, text: str) -> Subject:
        """``source:…``/``account:…`` as written; otherwise an IP address is a source."""
        text = text.strip()
        scope, sep, value = text.partition(":")
        if sep and scope in ("source", "account") and value:
            return cls(scope, value)  # type: ignore[arg-type]
        if is_address(text):
            return cls("source", text)
        return cls("account", text.lower())

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True)
class Ban:
    subject: Subject
    kind: Kind
    door: str
    failures: int
    window: float
    since: float
    until: float

    @property
    def reason(self) -> str:
        return f"{self.failures} failures in {self.window:g}s (last at {self.door})"

    def active(self, now: float) -> bool:
        return self.until > now

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["subject"] = self.subject.key
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Ban:
        scope, _, value = str(record["subject"]).partition(":")
        return cls(
            subject=Subject(scope, value),  # type: ignore[arg-type]
            kind=record["kind"],
            door=str(record["door"]),
            failures=int(record["failures"]),
            window=float(record["window"]),
            since=float(record["since"]),
            until=float(record["until"]),
        )


class BanBook(Protocol):
    async def put(self, ban: Ban) -> PutResult: ...

    async def get_many(self, subjects: Sequence[Subject]) -> list[Ban | None]:
        """The active block of each subject, in order (one round trip on Redis)."""
        ...

    async def all(self) -> list[Ban]: ...

    async def remove(self, subject: Subject) -> int: ...

    async def close(self) -> None: ...


def _replaces(new: Ban, current: Ban | None, now: float) -> PutResult:
    if current is None or not current.active(now):
        return "new"
    if current.kind == "ban" and new.kind == "delay":
        return "kept"
    if current.kind == new.kind and current.until >= new.until:
        return "kept"
    return "extended" if current.kind == "ban" else "new"


class MemoryBanBook:
    """This process's blocks in a dict; expired records are dropped when met."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._blocks: dict[Subject, Ban] = {}

    async def put(self, ban: Ban) -> PutResult:
        result = _replaces(ban, self._blocks.get(ban.subject), self._clock())
        if result != "kept":
            self._blocks[ban.subject] = ban
        return result

    async def get_many(self, subjects: Sequence[Subject]) -> list[Ban | None]:
        now = self._clock()
        found: list[Ban | None] = []
        for subject in subjects:
            ban = self._blocks.get(subject)
            if ban is not None and not ban.active(now):
                del self._blocks[subject]
                ban = None
            found.append(ban)
        return found

    async def all(self) -> list[Ban]:
        now = self._clock()
        for subject in [s for s, b in self._blocks.items() if not b.active(now)]:
            del self._blocks[subject]
        return list(self._blocks.values())

    async def remove(self, subject: Subject) -> int:
        return 1 if self._blocks.pop(subject, None) is not None else 0

    async def close(self) -> None:
        return None


# Store a block unless a longer one (or a ban, against a delay) is there; one atomic step,
# so two nodes recording at once cannot shorten a ban. Answers a PutResult.
_PUT = """
local cur = redis.call('HMGET', KEYS[1], 'until', 'kind')
local cur_until = tonumber(cur[1])
local active = cur_until ~= nil and cur_until > tonumber(ARGV[5])
if active then
  if cur[2] == 'ban' and ARGV[2] == 'delay' then return 'kept' end
  if cur[2] == ARGV[2] and cur_until >= tonumber(ARGV[1]) then return 'kept' end
end
redis.call('HSET', KEYS[1], 'until', ARGV[1], 'kind', ARGV[2], 'record', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if active and cur[2] == 'ban' then return 'extended' end
return 'new'
"""

# Listing walks the keyspace with SCAN (never KEYS): bounded so a huge keyspace cannot
# turn `gateway bans list` into a stall.
SCAN_BATCH = 500
SCAN_MAX_KEYS = 100_000


class RedisBanBook:
    """Blocks as Redis hashes ``<prefix>:<scope>:<value>`` with a TTL, shared by every node."""

    def __init__(self, client: Any, clock: Callable[[], float], prefix: str) -> None:
        import redis.exceptions

        self._client = client
        self._clock = clock
        self._prefix = prefix
        self._errors = (redis.exceptions.RedisError, OSError)
        self._put = client.register_script(_PUT)

    def _key(self, subject: Subject) -> str:
        return f"{self._prefix}:{subject.key}"

    async def put(self, ban: Ban) -> PutResult:
        now = self._clock()
        ttl_ms = max(1, math.ceil((ban.until - now) * 1000))
        try:
            answer = await self._put(
                keys=[self._key(ban.subject)],
                args=[repr(ban.until), ban.kind, json.dumps(ban.to_json()), ttl_ms, repr(now)],
            )
        except self._errors as exc:
            raise StorageUnavailable(f"redis: {exc}") from exc
        text = answer.decode() if isinstance(answer, bytes) else str(answer)
        return text  # type: ignore[return-value]

    async def get_many(self, subjects: Sequence[Subject]) -> list[Ban | None]:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for subject in subjects:
                    pipe.hget(self._key(subject), "record")
                raw = await pipe.execute()
        except self._errors as exc:
            raise StorageUnavailable(f"redis: {exc}") from exc
        now = self._clock()
        found: list[Ban | None] = []
        for value in raw:
            ban = Ban.from_json(json.loads(value)) if value else None
            found.append(ban if ban is not None and ban.active(now) else None)
        return found

    async def all(self) -> list[Ban]:
        keys: list[bytes] = []
        try:
            async for key in self._client.scan_iter(match=f"{self._prefix}:*", count=SCAN_BATCH):
                keys.append(key)
                if len(keys) >= SCAN_MAX_KEYS:
                    break
            async with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hget(key, "record")
                raw = await pipe.execute()
        except self._errors as exc:
            raise StorageUnavailable(f"redis: {exc}") from exc
        now = self._clock()
        bans = [Ban.from_json(json.loads(value)) for value in raw if value]
        return [ban for ban in bans if ban.active(now)]

    async def remove(self, subject: Subject) -> int:
        try:
            return int(await self._client.delete(self._key(subject)))
        except self._errors as exc:
            raise StorageUnavailable(f"redis: {exc}") from exc

    async def close(self) -> None:
        await self._client.aclose()
