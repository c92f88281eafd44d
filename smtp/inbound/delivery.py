"""Putting an accepted message into Maildirs, crash-safe and never twice.

One mailbox: the Maildir itself is the journal: write ``tmp/<name>``, fsync, link it to
``new/<name>``, fsync new/; the link is the commit, and the SMTP 250 follows it.
Several mailboxes (a list, an alias fanning out): commit to the ``Journal`` first, answer
250, then hard-link the one copy into every mailbox (one inode, as Dovecot's LDA does for
multiple recipients). Each mailbox's name is derived from the parcel id and the mailbox's
index, so a delivery repeated after a crash finds its name taken and adds nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
from pathlib import Path

from smtp.inbound.errors import StorageFailed, StorageFull
from smtp.inbound.journal import Journal, Parcel
from smtp.maildir import names
from smtp.maildir.durable import fsync_dir, write_synced
from smtp.maildir.folder import create_maildir
from smtp.maildir.store import MailboxStore

log = logging.getLogger(__name__)


class MaildirDelivery:
    def __init__(self, mailboxes: MailboxStore, journal: Journal) -> None:
        self.mailboxes = mailboxes
        self.journal = journal
        self._created: set[Path] = set()

    def unique_for(self, parcel: Parcel, index: int) -> str:
        return names.make_unique(
            parcel.arrived, f"{parcel.id}_{index}", self.mailboxes.hostname, parcel.size
        )

    async def deliver(self, parcel: Parcel, content: bytes) -> None:
        """One mailbox: durable in it when this returns. Several: durable in the journal
        when this returns (the links follow in ``spread``). Raises StorageFull/Failed."""
        loop = asyncio.get_running_loop()
        try:
            if len(parcel.mailboxes) == 1:
                await loop.run_in_executor(None, self._write_one, parcel, content)
                self._announce(parcel, parcel.mailboxes)
            else:
                await loop.run_in_executor(None, self.journal.commit, parcel, content)
        except OSError as exc:
            if len(parcel.mailboxes) > 1:
                self.journal.finish(parcel.id)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull("insufficient system storage, try again later") from exc
            log.exception("writing message %s failed", parcel.id)
            raise StorageFailed("could not store the message, try again later") from exc

    async def spread(self, parcel: Parcel, *, recovering: bool = False) -> None:
        """Link a committed parcel into each of its mailboxes, then finish it."""
        loop = asyncio.get_running_loop()
        try:
            done = await loop.run_in_executor(None, self._link_all, parcel, recovering)
        except OSError:
            # Kept in the journal: the next start (or recovery) delivers it.
            log.exception("inbound: delivering %s failed; it stays in the journal", parcel.id)
            return
        self.journal.finish(parcel.id)
        self._announce(parcel, done)

    async def recover(self) -> int:
        """Deliver what the journal committed before a crash; answer how many parcels."""
        loop = asyncio.get_running_loop()
        self.journal.open()
        pending = await loop.run_in_executor(None, self.journal.pending)
        for parcel in pending:
            await self.spread(parcel, recovering=True)
        if pending:
            log.info("inbound: delivered %d message(s) left by an interrupted run",
                     len(pending))
        return len(pending)

    def _announce(self, parcel: Parcel, mailboxes: tuple[str, ...] | list[str]) -> None:
        for address in mailboxes:
            self.mailboxes.delivered(address, parcel.size)

    def _maildir(self, address: str) -> Path:
        path = self.mailboxes.path_for(address)
        if path not in self._created:
            create_maildir(path)
            self._created.add(path)
        return path

    def _write_one(self, parcel: Parcel, content: bytes) -> None:
        box = self._maildir(parcel.mailboxes[0])
        unique = self.unique_for(parcel, 0)
        tmp = box / "tmp" / unique
        write_synced(tmp, content)
        try:
            self._link(tmp, box, unique)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _link_all(self, parcel: Parcel, recovering: bool) -> list[str]:
        source = self.journal.content_path(parcel.id)
        done: list[str] = []
        for index, address in enumerate(parcel.mailboxes):
            try:
                box = self._maildir(address)
            except (OSError, ValueError):
                log.exception("inbound: no Maildir for %s; message %s not delivered there",
                              address, parcel.id)
                continue
            unique = self.unique_for(parcel, index)
            if recovering and _already_in(box, unique):
                continue
            self._link_one(source, box, unique)
            done.append(address)
        return done

    def _link_one(self, source: Path, box: Path, unique: str) -> None:
        try:
            self._link(source, box, unique)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            # Mailboxes on another filesystem than the journal: copy instead of link.
            tmp = box / "tmp" / unique
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            shutil.copyfile(source, tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            try:
                self._link(tmp, box, unique)
            finally:
                os.unlink(tmp)

    @staticmethod
    def _link(source: Path, box: Path, unique: str) -> None:
        try:
            os.link(source, box / "new" / unique)
        except FileExistsError:
            return  # delivered before (a repeat after a crash): nothing to add
        fsync_dir(box / "new")


def _already_in(box: Path, unique: str) -> bool:
    """Delivered earlier and since moved to cur/ by a reader (only asked on recovery)."""
    if (box / "new" / unique).exists():
        return True
    prefix = unique + names.INFO_SEPARATOR
    with os.scandir(box / "cur") as listing:
        return any(item.name.startswith(prefix) for item in listing)
