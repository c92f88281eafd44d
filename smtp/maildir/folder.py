"""One Maildir as the process sees it: its messages by UID, their flags, and changes.

There is one ``MaildirFolder`` per directory in the process (``MailboxStore`` hands them
out), shared by every IMAP and POP3 session on it; each session keeps its own sequence
numbers on top (``smtp/imap/view.py``). The directory stays the truth: another process
(Dovecot in the bench, a second node) may change it, so ``refresh`` re-reads it whenever
the mtime of new/ or cur/ moved, and listeners are told.

Messages in new/ have no flags and are "recent" (RFC 3501 ``\\Recent``); a read-write
SELECT moves them to cur/, as Dovecot does, and flag changes rename within cur/.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from smtp.maildir import names
from smtp.maildir.durable import fsync_dir, write_synced
from smtp.maildir.uidlist import UidList

log = logging.getLogger(__name__)

SUBDIRS = ("cur", "new", "tmp")
# Maildir: a tmp/ file untouched for 36 hours is a delivery that died; remove it.
TMP_MAX_AGE = 36 * 3600
# Header sections kept per folder (a few hundred bytes each).
HEADER_CACHE_ENTRIES = 50_000



class Listener(Protocol):
    """A session with the folder open (held weakly: a forgotten one just goes away)."""

    def folder_changed(self) -> None: ...


@dataclass(frozen=True)
class Entry:
    uid: int
    unique: str
    subdir: str  # "new" or "cur"
    flags: frozenset[str]
    size: int | None

    @property
    def filename(self) -> str:
        if self.subdir == "new" and not self.flags:
            return self.unique
        return names.MaildirName(self.unique, self.flags, self.size).filename()


def create_maildir(path: Path) -> None:
    for sub in SUBDIRS:
        (path / sub).mkdir(parents=True, exist_ok=True, mode=0o700)


def arrival_order(unique: str) -> tuple[int, str]:
    """Names start with the delivery time (``<seconds>.``): UIDs follow arrival."""
    head = unique.split(".", 1)[0]
    return (int(head) if head.isdigit() else 0, unique)


class MaildirFolder:
    def __init__(
        self, path: Path, *, hostname: str, on_write: Callable[[], None] | None = None
    ) -> None:
        self.path = path
        self._root = str(path)
        self.hostname = hostname
        self._on_write = on_write
        self._uids: UidList | None = None
        self._entries: dict[int, Entry] = {}
        self._by_unique: dict[str, int] = {}
        self._ordered: list[int] | None = []
        self._seen_mtimes: tuple[int, int] | None = None
        self._listeners: weakref.WeakSet[Listener] = weakref.WeakSet()
        self._sizes: dict[int, int] = {}
        # Header sections by UID (a Maildir message never changes; only its name does):
        # what Dovecot keeps in dovecot.index.cache, so a client's header sync reads no file.
        self._headers: dict[int, bytes] = {}

    # -- reading ---------------------------------------------------------------------

    @property
    def validity(self) -> int:
        return self._load().validity

    @property
    def next_uid(self) -> int:
        return self._load().next_uid

    def uids(self) -> list[int]:
        """Every UID, ascending."""
        self._load()
        if self._ordered is None:
            self._ordered = sorted(self._entries)
        return self._ordered

    def get(self, uid: int) -> Entry | None:
        if self._uids is None:
            self._load()
        return self._entries.get(uid)

    def file_of(self, entry: Entry) -> Path:
        return self.path / entry.subdir / entry.filename

    def file_name(self, entry: Entry) -> str:
        """``file_of`` as a string: FETCH asks for thousands, pathlib costs."""
        return f"{self._root}/{entry.subdir}/{entry.filename}"

    def cached_header(self, uid: int) -> bytes | None:
        return self._headers.get(uid)

    def remember_header(self, uid: int, header: bytes) -> None:
        if len(self._headers) >= HEADER_CACHE_ENTRIES:
            self._headers.pop(next(iter(self._headers)))
        self._headers[uid] = header

    def size_of(self, entry: Entry) -> int:
        if entry.size is not None:
            return entry.size
        cached = self._sizes.get(entry.uid)
        if cached is None:
            try:
                cached = self.file_of(entry).stat().st_size
            except FileNotFoundError:
                cached = 0
            self._sizes[entry.uid] = cached
        return cached

    def internal_date(self, entry: Entry) -> float:
        """The file's mtime: delivery time, or the date APPEND asked for (as Dovecot)."""
        try:
            return self.file_of(entry).stat().st_mtime
        except FileNotFoundError:
            return arrival_order(entry.unique)[0] or time.time()

    def usage(self) -> int:
        self.refresh()
        return sum(self.size_of(e) for e in self._entries.values())

    # -- listeners -------------------------------------------------------------------

    def listen(self, listener: Listener) -> None:
        self._listeners.add(listener)

    def unlisten(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    def changed(self) -> None:
        """Something (a delivery, another session) changed the folder: tell the sessions."""
        self._seen_mtimes = None
        for listener in list(self._listeners):
            try:
                listener.folder_changed()
            except Exception:
                log.exception("maildir listener failed")

    # -- refresh ---------------------------------------------------------------------

    def _load(self) -> UidList:
        if self._uids is None:
            create_maildir(self.path)
            self._uids = UidList.load(self.path)
            self.refresh(force=True)
        return self._uids

    def _mtimes(self) -> tuple[int, int]:
        return (os.stat(self.path / "new").st_mtime_ns, os.stat(self.path / "cur").st_mtime_ns)

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read the directory if it changed; True when the set of messages or flags did."""
        uidlist = self._load()
        try:
            mtimes = self._mtimes()
        except FileNotFoundError:
            create_maildir(self.path)
            mtimes = self._mtimes()
        if not force and mtimes == self._seen_mtimes:
            return False
        found: dict[str, tuple[str, names.MaildirName]] = {}
        for sub in ("new", "cur"):
            with os.scandir(self.path / sub) as listing:
                for item in listing:
                    parsed = names.parse(item.name)
                    if parsed is not None:
                        found[parsed.unique] = (sub, parsed)
        self._seen_mtimes = mtimes
        changed = False
        gone = [u for u in self._by_unique if u not in found]
        for unique in gone:
            uid = self._by_unique.pop(unique)
            self._entries.pop(uid, None)
            self._sizes.pop(uid, None)
            self._headers.pop(uid, None)
            changed = True
        if gone:
            uidlist.forget(gone)
        unknown = sorted((u for u in found if u not in self._by_unique), key=arrival_order)
        fresh = [u for u in unknown if u not in uidlist.uids]
        uidlist.assign(fresh)
        for unique in unknown:
            sub, parsed = found[unique]
            uid = uidlist.uids[unique]
            self._entries[uid] = Entry(uid, unique, sub, parsed.flags, parsed.size)
            self._by_unique[unique] = uid
            changed = True
        for unique, (sub, parsed) in found.items():
            uid = self._by_unique[unique]
            entry = self._entries[uid]
            if entry.subdir != sub or entry.flags != parsed.flags:
                self._entries[uid] = replace(entry, subdir=sub, flags=parsed.flags)
                changed = True
        if changed:
            self._ordered = None
        return changed

    def _own_change_done(self) -> None:
        """Our own rename/unlink moved the mtimes: no need to re-read for that."""
        with contextlib.suppress(FileNotFoundError):
            self._seen_mtimes = self._mtimes()

    def _sizes_changed(self) -> None:
        if self._on_write is not None:
            self._on_write()

    # -- writing ---------------------------------------------------------------------

    def take_new(self) -> list[int]:
        """Move new/ to cur/ (a read-write SELECT); answer the UIDs moved (recent)."""
        self.refresh()
        moved: list[int] = []
        for uid in self.uids():
            entry = self._entries[uid]
            if entry.subdir != "new":
                continue
            moved_entry = replace(entry, subdir="cur")
            if self._rename(entry, moved_entry):
                moved.append(uid)
        if moved:
            self._own_change_done()
        return moved

    def set_flags(self, uid: int, flags: frozenset[str]) -> frozenset[str] | None:
        """Give a message exactly ``flags`` (system flags only); None if it is gone."""
        entry = self._entries.get(uid)
        if entry is None:
            return None
        flags = frozenset(f for f in flags if f in names.FLAG_LETTERS)
        if flags == entry.flags and entry.subdir == "cur":
            return flags
        if not self._rename(entry, replace(entry, subdir="cur", flags=flags)):
            return None
        self._own_change_done()
        return flags

    def _rename(self, old: Entry, new: Entry) -> bool:
        try:
            os.rename(self.file_of(old), self.file_of(new))
        except FileNotFoundError:
            # Renamed or removed by someone else: read the directory again.
            self.refresh(force=True)
            current = self._entries.get(old.uid)
            if current is None:
                return False
            try:
                os.rename(self.file_of(current), self.file_of(new))
            except FileNotFoundError:
                return False
        self._entries[old.uid] = new
        return True

    def expunge(self, uids: Iterable[int]) -> list[int]:
        """Remove messages; answer the UIDs actually removed."""
        removed: list[int] = []
        gone: list[str] = []
        for uid in uids:
            entry = self._entries.get(uid)
            if entry is None:
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.file_of(entry))
            del self._entries[uid]
            self._by_unique.pop(entry.unique, None)
            self._sizes.pop(uid, None)
            self._headers.pop(uid, None)
            removed.append(uid)
            gone.append(entry.unique)
        if removed:
            self._ordered = None
            self._load().forget(gone)
            fsync_dir(self.path / "cur")
            self._own_change_done()
            self._sizes_changed()
        return removed

    def append(self, data: bytes, flags: frozenset[str], when: float | None = None) -> int:
        """Store a message (IMAP APPEND) durably in cur/ with ``flags``; answer its UID."""
        uidlist = self._load()
        self.refresh()
        unique = names.make_unique(
            int(time.time()), secrets.token_hex(8), self.hostname, len(data)
        )
        tmp = self.path / "tmp" / unique
        write_synced(tmp, data)
        if when is not None:
            os.utime(tmp, (when, when))
        entry = Entry(0, unique, "cur", frozenset(f for f in flags if f in names.FLAG_LETTERS),
                      len(data))
        try:
            os.link(tmp, self.path / "cur" / entry.filename)
        finally:
            os.unlink(tmp)
        fsync_dir(self.path / "cur")
        (uid,) = uidlist.assign([unique])
        entry = replace(entry, uid=uid)
        self._entries[uid] = entry
        self._by_unique[unique] = uid
        self._ordered = None
        self._own_change_done()
        self._sizes_changed()
        return uid

    def clean_tmp(self, now: float | None = None) -> int:
        """Remove deliveries that died half-way (older than 36 h, as the standard says)."""
        limit = (now or time.time()) - TMP_MAX_AGE
        removed = 0
        with os.scandir(self.path / "tmp") as listing:
            for item in listing:
                with contextlib.suppress(FileNotFoundError):
                    if item.stat().st_mtime < limit:
                        os.unlink(item.path)
                        removed += 1
        return removed
