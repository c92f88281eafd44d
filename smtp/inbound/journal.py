"""The inbound journal: a message for several mailboxes is committed once, then delivered.

``commit`` writes ``<id>.msg`` (the message, fsync'd) and then ``<id>.json`` (who gets it)
through a tmp file, fsync and rename: the rename is the commit point. Delivery hard-links
``<id>.msg`` into each mailbox under a name derived from the id and the recipient's index,
so doing it twice makes no second copy; ``finish`` removes both files. After a crash,
``pending`` lists what was committed and not finished (delivered again, idempotently) and
removes ``.msg`` files that were never committed (the client had no 250: it retries).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from smtp.maildir.durable import fsync_dir, replace_synced, write_synced


@dataclass(frozen=True)
class Parcel:
    """One accepted message and the mailboxes it goes to."""

    id: str
    sender: str
    mailboxes: tuple[str, ...]
    arrived: int  # whole seconds, the start of every Maildir name it gets
    size: int


class Journal:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def content_path(self, parcel_id: str) -> Path:
        return self.directory / f"{parcel_id}.msg"

    def commit(self, parcel: Parcel, content: bytes) -> None:
        write_synced(self.content_path(parcel.id), content)
        record = json.dumps({**asdict(parcel), "mailboxes": list(parcel.mailboxes)})
        replace_synced(self.directory / f"{parcel.id}.json", record.encode())

    def finish(self, parcel_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.directory / f"{parcel_id}.json")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.content_path(parcel_id))

    def pending(self) -> list[Parcel]:
        """Committed parcels not yet finished; uncommitted leftovers are removed."""
        found: list[Parcel] = []
        committed: set[str] = set()
        for path in sorted(self.directory.glob("*.json")):
            try:
                raw = json.loads(path.read_text())
                parcel = Parcel(
                    id=str(raw["id"]), sender=str(raw["sender"]),
                    mailboxes=tuple(str(m) for m in raw["mailboxes"]),
                    arrived=int(raw["arrived"]), size=int(raw["size"]),
                )
            except (ValueError, KeyError, TypeError):
                continue  # not ours, or damaged: left for an operator to look at
            if self.content_path(parcel.id).exists():
                found.append(parcel)
                committed.add(parcel.id)
            else:
                path.unlink()  # finished but for the record: nothing left to do
        for path in self.directory.glob("*.msg"):
            if path.stem not in committed:
                path.unlink()
        for path in self.directory.glob(".*.tmp"):
            path.unlink()
        fsync_dir(self.directory)
        return found
