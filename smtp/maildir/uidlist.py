"""The UIDs of one Maildir, kept in ``gateway-uidlist`` beside cur/ and new/.

IMAP clients cache messages by UID for as long as UIDVALIDITY stays the same (RFC 3501
§2.3.1.1), so a UID, once shown, must name the same message across restarts and must never
be given to another one. The file is an append-only log:

    G1 <uidvalidity> <uidnext>          header (written on create and on compaction)
    <uid> <unique>                      one line per UID handed out

A UID is appended and fsync'd *before* any client sees it; a torn last line (a crash in
the middle of an append) is ignored, and the UID it would have carried was never shown.
Lines of expunged messages are dropped by compaction (an atomic rewrite), which keeps
``uidnext`` in the header, so UIDs never go backwards.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from smtp.maildir.durable import replace_synced, write_all

FILENAME = "gateway-uidlist"
HEADER = "G1"
# Rewrite when more than this share of the lines name messages that are gone.
COMPACT_RATIO = 0.5
COMPACT_MIN = 256


class UidList:
    def __init__(self, path: Path, validity: int, next_uid: int, uids: dict[str, int]) -> None:
        self.path = path
        self.validity = validity
        self.next_uid = next_uid
        self.uids = uids  # unique name → UID
        self._lines = len(uids)

    @classmethod
    def load(cls, directory: Path) -> UidList:
        path = directory / FILENAME
        try:
            text = path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            return cls._create(path)
        lines = text.split("\n")
        head = lines[0].split()
        if len(head) != 3 or head[0] != HEADER or not head[1].isdigit() or not head[2].isdigit():
            # Unreadable: a new UIDVALIDITY tells every client to forget its cache.
            return cls._create(path)
        uids: dict[str, int] = {}
        next_uid = int(head[2])
        # The last element is "" after a complete final line, or a torn line: skip it.
        for line in lines[1:-1]:
            uid_text, _, unique = line.partition(" ")
            if not uid_text.isdigit() or not unique:
                continue
            uid = int(uid_text)
            uids[unique] = uid
            next_uid = max(next_uid, uid + 1)
        found = cls(path, int(head[1]), next_uid, uids)
        found._lines = len(lines) - 2
        return found

    @classmethod
    def _create(cls, path: Path) -> UidList:
        created = cls(path, int(time.time()), 1, {})
        created._rewrite()
        return created

    def assign(self, uniques: list[str]) -> list[int]:
        """New UIDs for ``uniques`` (in that order), durable before this returns."""
        if not uniques:
            return []
        given: list[int] = []
        lines: list[str] = []
        for unique in uniques:
            uid = self.next_uid
            self.next_uid += 1
            self.uids[unique] = uid
            given.append(uid)
            lines.append(f"{uid} {unique}\n")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            write_all(fd, "".join(lines).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self._lines += len(lines)
        return given

    def forget(self, uniques: list[str]) -> None:
        """Messages that are gone; their lines go at the next compaction."""
        for unique in uniques:
            self.uids.pop(unique, None)
        stale = self._lines - len(self.uids)
        if stale > COMPACT_MIN and stale > self._lines * COMPACT_RATIO:
            self._rewrite()

    def _rewrite(self) -> None:
        body = [f"{HEADER} {self.validity} {self.next_uid}\n"]
        body.extend(f"{uid} {unique}\n" for unique, uid in sorted(
            self.uids.items(), key=lambda item: item[1]))
        replace_synced(self.path, "".join(body).encode())
        self._lines = len(self.uids)

