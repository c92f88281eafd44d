"""``MailboxStore``: where each address's Maildir lives, and the one folder object per path.

Layout: ``<root>/<domain>/<local>/`` is the mailbox's INBOX Maildir; its other folders are
Maildir++ subdirectories ``.<Name>/`` inside it (what Dovecot reads with
``mail_location = maildir:<root>/%d/%n``, so the bench's Dovecot serves the same files).

Quota is the byte total of every folder of the mailbox. It is counted once from the
``,S=`` sizes in the file names and then kept current by deliveries and by the folders'
own writes; a count older than ``USAGE_TTL`` is redone, so changes made by another process
are seen within that time.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from smtp.maildir import names
from smtp.maildir.folder import MaildirFolder, create_maildir

INBOX = "INBOX"
USAGE_TTL = 60.0
# Folder names we keep on disk as ".<name>": no dots (Maildir++ uses them as hierarchy),
# no slashes, nothing a shell or a path could misread.
_FOLDER = re.compile(r"^[A-Za-z0-9 _&,+'()-]{1,100}$")
_PATH_PART = re.compile(r"^[a-z0-9][a-z0-9._+=-]{0,254}$")


class BadFolderName(ValueError):
    """A folder name we cannot map to a directory."""


class MailboxStore:
    def __init__(
        self, root: Path, *, hostname: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.root = root
        self.hostname = hostname
        self._clock = clock
        self._folders: dict[Path, MaildirFolder] = {}
        self._usage: dict[Path, tuple[float, int]] = {}

    def path_for(self, address: str) -> Path:
        """The INBOX directory of ``local@domain`` (already lowercased by the store)."""
        local, _, domain = address.lower().rpartition("@")
        for part in (local, domain):
            if not _PATH_PART.match(part) or ".." in part:
                raise ValueError(f"address {address!r} cannot name a directory")
        return self.root / domain / local

    def folder_path(self, address: str, name: str) -> Path:
        base = self.path_for(address)
        if name.upper() == INBOX:
            return base
        if not _FOLDER.match(name):
            raise BadFolderName(name)
        return base / f".{name}"

    def folder(self, address: str, name: str = INBOX) -> MaildirFolder:
        path = self.folder_path(address, name)
        found = self._folders.get(path)
        if found is None:
            root = self.path_for(address)

            def recount(root: Path = root) -> None:
                self._usage.pop(root, None)

            found = MaildirFolder(path, hostname=self.hostname, on_write=recount)
            self._folders[path] = found
        return found

    def folder_names(self, address: str) -> list[str]:
        """INBOX and the Maildir++ folders that exist."""
        base = self.path_for(address)
        found = [INBOX]
        try:
            with os.scandir(base) as listing:
                for item in listing:
                    if item.name.startswith(".") and item.is_dir() and (
                        Path(item.path) / "cur"
                    ).is_dir():
                        found.append(item.name[1:])
        except FileNotFoundError:
            pass
        return [found[0], *sorted(found[1:])]

    def create_folder(self, address: str, name: str) -> None:
        create_maildir(self.folder_path(address, name))

    def forget_folder(self, path: Path) -> None:
        self._folders.pop(path, None)

    def delivered(self, address: str, size: int) -> None:
        """A delivery added ``size`` bytes to the INBOX of ``address``: count it, tell
        the sessions that have it open."""
        root = self.path_for(address)
        cached = self._usage.get(root)
        if cached is not None:
            self._usage[root] = (cached[0], cached[1] + size)
        folder = self._folders.get(root)
        if folder is not None:
            folder.changed()

    def usage(self, address: str) -> int:
        root = self.path_for(address)
        now = self._clock()
        cached = self._usage.get(root)
        if cached is not None and now - cached[0] < USAGE_TTL:
            return cached[1]
        total = _count(root)
        self._usage[root] = (now, total)
        return total


def _count(root: Path) -> int:
    """Bytes in every folder under ``root`` (INBOX and .Sub), from ,S= or a stat."""
    total = 0
    dirs = [root]
    try:
        with os.scandir(root) as listing:
            dirs.extend(Path(i.path) for i in listing if i.name.startswith(".") and i.is_dir())
    except FileNotFoundError:
        return 0
    for folder in dirs:
        for sub in ("new", "cur"):
            try:
                with os.scandir(folder / sub) as listing:
                    for item in listing:
                        parsed = names.parse(item.name)
                        if parsed is None:
                            continue
                        if parsed.size is not None:
                            total += parsed.size
                        else:
                            try:
                                total += item.stat().st_size
                            except FileNotFoundError:
                                continue
            except FileNotFoundError:
                continue
    return total
