"""The durable outbound spool: files on disk, fsync'd before the client hears 250.

Layout under the spool directory:

- ``tmp/``: files being written; whatever is left here after a crash was never acknowledged
  and is removed at start.
- ``queue/<id>.msg``: one accepted message, written once: a first line ``GWSPOOL1 {json}``
  with the envelope (sender, recipients, arrival, who submitted it), then the message bytes.
  It is written to ``tmp/``, fsync'd, renamed into ``queue/`` and the directory fsync'd, so
  after ``accept()`` returns the message survives a crash or a power cut.
- ``queue/<id>.log``: what happened since, one JSON object per line, appended and fsync'd:
  ``delivered``/``deferred``/``failed`` per recipient, ``bounced``, ``retry`` (from the
  CLI). Folding the log over the envelope gives each recipient's state, so a restart goes
  on where the last run stopped and nobody who was delivered to gets the message again.

A message is removed (``.msg`` first, then ``.log``) once every recipient is delivered or
failed and its bounce, if any, is itself in the spool.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import secrets
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from smtp.errors import SpoolFailed, SpoolFull

log = logging.getLogger(__name__)

MAGIC = b"GWSPOOL1 "
# The envelope line is bounded so a damaged file cannot make the loader read it all.
MAX_ENVELOPE_LINE = 4 * 1024 * 1024
# Threads doing fsync'd writes: enough that concurrent submissions overlap their waits.
IO_THREADS = 8

Status = Literal["pending", "delivered", "failed"]


@dataclass(frozen=True)
class Envelope:
    id: str
    sender: str  # "" for a bounce (the null reverse-path, RFC 5321 §4.5.5)
    recipients: tuple[str, ...]
    arrived_at: float
    submitted_by: str = ""
    source: str | None = None
    size: int = 0
    bounce_of: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sender": self.sender,
            "recipients": list(self.recipients),
            "arrived_at": self.arrived_at,
            "submitted_by": self.submitted_by,
            "source": self.source,
            "size": self.size,
            "bounce_of": self.bounce_of,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Envelope:
        return cls(
            id=str(data["id"]),
            sender=str(data["sender"]),
            recipients=tuple(str(r) for r in data["recipients"]),
            arrived_at=float(data["arrived_at"]),
            submitted_by=str(data.get("submitted_by") or ""),
            source=data.get("source"),
            size=int(data.get("size") or 0),
            bounce_of=data.get("bounce_of"),
        )


@dataclass(frozen=True)
class RecipientState:
    address: str
    status: Status = "pending"
    attempts: int = 0
    next_attempt: float = 0.0
    last_reply: str | None = None
    finished_at: float | None = None


@dataclass
class QueuedMessage:
    envelope: Envelope
    recipients: dict[str, RecipientState] = field(default_factory=dict)
    bounced: bool = False

    @property
    def id(self) -> str:
        return self.envelope.id

    def pending(self) -> list[RecipientState]:
        return [r for r in self.recipients.values() if r.status == "pending"]

    def failed(self) -> list[RecipientState]:
        return [r for r in self.recipients.values() if r.status == "failed"]

    def next_attempt(self) -> float | None:
        waiting = [r.next_attempt for r in self.pending()]
        return min(waiting) if waiting else None

    def apply(self, event: dict[str, Any]) -> None:
        """Fold one log event into the state (unknown events are ignored: newer writers)."""
        kind = event.get("event")
        at = float(event.get("at", 0.0))
        if kind == "bounced":
            self.bounced = True
            return
        if kind == "retry":
            for r in self.pending():
                self.recipients[r.address] = replace(r, next_attempt=at)
            return
        rcpt = event.get("rcpt")
        current = self.recipients.get(rcpt) if isinstance(rcpt, str) else None
        if current is None or current.status != "pending":
            return  # a recipient finishes once; a late duplicate event changes nothing
        reply = event.get("reply")
        if kind == "delivered":
            self.recipients[current.address] = replace(
                current, status="delivered", last_reply=reply, finished_at=at,
                attempts=current.attempts + 1,
            )
        elif kind == "failed":
            self.recipients[current.address] = replace(
                current, status="failed", last_reply=reply, finished_at=at,
                attempts=current.attempts + 1,
            )
        elif kind == "deferred":
            self.recipients[current.address] = replace(
                current, attempts=int(event.get("attempts", current.attempts + 1)),
                next_attempt=float(event.get("next", at)), last_reply=reply,
            )


def new_id() -> str:
    """Sortable by arrival (hex nanoseconds), unguessable, safe as a file name."""
    return f"{time.time_ns():016x}{secrets.token_hex(5)}"


def valid_id(text: str) -> bool:
    return 0 < len(text) <= 64 and all(c in "0123456789abcdefghijklmnopqrstuvwxyz-" for c in text)


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.queue = root / "queue"
        self._io = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="mail-spool")

    def prepare(self) -> None:
        """Create the directories; drop half-written files of a crashed run (never acked)."""
        for directory in (self.tmp, self.queue):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for leftover in self.tmp.iterdir():
            leftover.unlink(missing_ok=True)

    def close(self) -> None:
        self._io.shutdown(wait=True)

    async def _run(self, func: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._io, func, *args)

    # -- accepting ---------------------------------------------------------------------

    async def accept(self, envelope: Envelope, message: bytes) -> QueuedMessage:
        """Write the message durably; only then may the client hear 250."""
        envelope = replace(envelope, size=len(message))
        try:
            await self._run(self._write_message, envelope, message)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                log.error("spool disk full: message refused with 452 (%s)", exc)
                raise SpoolFull("insufficient system storage, try again later") from exc
            log.exception("cannot write to the spool")
            raise SpoolFailed("cannot queue the message now, try again later") from exc
        return self._fresh(envelope)

    @staticmethod
    def _fresh(envelope: Envelope) -> QueuedMessage:
        return QueuedMessage(
            envelope,
            {
                r: RecipientState(r, next_attempt=envelope.arrived_at)
                for r in dict.fromkeys(envelope.recipients)
            },
        )

    def _write_message(self, envelope: Envelope, message: bytes) -> None:
        final = self.queue / f"{envelope.id}.msg"
        if final.exists():
            return  # the same id again (a bounce retried after a crash): already durable
        head = MAGIC + json.dumps(envelope.to_json(), separators=(",", ":")).encode() + b"\n"
        tmp = self.tmp / f"{envelope.id}.msg"
        try:
            self._write_file(tmp, head + message)
            os.rename(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.queue)

    def _write_file(self, path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- recording what happened -------------------------------------------------------

    async def record(self, message_id: str, events: Iterable[dict[str, Any]]) -> bool:
        """Append events durably; False when the message is gone (deleted meanwhile)."""
        lines = b"".join(
            json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in events
        )
        if not lines:
            return True
        return bool(await self._run(self._append, message_id, lines))

    def record_now(self, message_id: str, events: Iterable[dict[str, Any]]) -> bool:
        """``record`` for callers without a loop (the CLI); appends are atomic lines, so a
        running queue and the CLI may both write one message's log."""
        return self._append(message_id, b"".join(
            json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in events
        ))

    def _append(self, message_id: str, lines: bytes) -> bool:
        if not (self.queue / f"{message_id}.msg").exists():
            return False
        fd = os.open(self.queue / f"{message_id}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                     0o600)
        try:
            os.write(fd, lines)
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    async def remove(self, message_id: str) -> None:
        await self._run(self.remove_now, message_id)

    def remove_now(self, message_id: str) -> bool:
        """Delete a message (``.msg`` first: a lone ``.log`` is swept at the next start)."""
        found = (self.queue / f"{message_id}.msg").exists()
        (self.queue / f"{message_id}.msg").unlink(missing_ok=True)
        (self.queue / f"{message_id}.log").unlink(missing_ok=True)
        return found

    # -- reading -----------------------------------------------------------------------

    async def content(self, message_id: str) -> bytes:
        data: bytes = await self._run(self._read_content, message_id)
        return data

    def _read_content(self, message_id: str) -> bytes:
        with open(self.queue / f"{message_id}.msg", "rb") as fh:
            fh.readline(MAX_ENVELOPE_LINE)
            return fh.read()

    def load(self, message_id: str) -> QueuedMessage | None:
        """The message with its log folded in; None when gone or unreadable (logged)."""
        path = self.queue / f"{message_id}.msg"
        try:
            with open(path, "rb") as fh:
                line = fh.readline(MAX_ENVELOPE_LINE)
        except FileNotFoundError:
            return None
        if not line.startswith(MAGIC) or not line.endswith(b"\n"):
            log.error("spool file %s is damaged; left in place for the operator", path.name)
            return None
        try:
            envelope = Envelope.from_json(json.loads(line[len(MAGIC):]))
        except (ValueError, KeyError, TypeError):
            log.error("spool file %s has a bad envelope; left in place", path.name)
            return None
        message = self._fresh(envelope)
        try:
            with open(self.queue / f"{message_id}.log", "rb") as fh:
                for raw in fh:
                    if not raw.endswith(b"\n"):
                        break  # a line cut by a crash was never fsync'd as a whole
                    try:
                        message.apply(json.loads(raw))
                    except ValueError:
                        log.error("bad line in %s.log ignored", message_id)
        except FileNotFoundError:
            pass
        return message

    def ids(self) -> list[str]:
        """Every queued message id, oldest first; lone ``.log`` files are removed."""
        found: list[str] = []
        for entry in os.scandir(self.queue):
            stem, _, ext = entry.name.rpartition(".")
            if ext == "msg":
                found.append(stem)
            elif ext == "log" and not (self.queue / f"{stem}.msg").exists():
                Path(entry.path).unlink(missing_ok=True)
        return sorted(found)

    def log_mtime(self, message_id: str) -> float:
        try:
            return (self.queue / f"{message_id}.log").stat().st_mtime
        except FileNotFoundError:
            return 0.0


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX: the entry lives in the directory)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
