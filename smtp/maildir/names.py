"""Maildir file names: ``<unique>[,S=<size>]`` in new/, ``<unique>[,S=<size>]:2,<flags>`` in cur/.

The flag letters are the Maildir standard's (cr.yp.to/proto/maildir.html), so Dovecot and
mutt read the same folders: D draft, F flagged, R replied, S seen, T trashed (= IMAP
``\\Deleted``). ``,S=`` carries the size, as Dovecot writes it, so quota and RFC822.SIZE
need no stat.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

INFO_SEPARATOR = ":2,"
# IMAP system flag ↔ Maildir letter (RFC 3501 §2.3.2; ``\\Recent`` is session state).
FLAG_LETTERS: dict[str, str] = {
    "\\Draft": "D",
    "\\Flagged": "F",
    "\\Answered": "R",
    "\\Seen": "S",
    "\\Deleted": "T",
}
LETTER_FLAGS = {v: k for k, v in FLAG_LETTERS.items()}
_SIZE = re.compile(r",S=(\d{1,12})(?=,|$)")
# What we write: never a '/', ':' or NUL, so a name cannot leave its directory.
_SAFE_UNIQUE = re.compile(r"^[A-Za-z0-9._,=-]{1,200}$")


@dataclass(frozen=True)
class MaildirName:
    unique: str  # the part before ":2,", stable for the message's life
    flags: frozenset[str]  # IMAP system flags
    size: int | None  # from ,S=, when present

    def filename(self) -> str:
        """The name in cur/ (flags sorted, as the standard asks)."""
        letters = "".join(sorted(FLAG_LETTERS[f] for f in self.flags if f in FLAG_LETTERS))
        return f"{self.unique}{INFO_SEPARATOR}{letters}"


def parse(filename: str) -> MaildirName | None:
    """A name found in new/ or cur/; None for what is not a message (dot files, junk)."""
    if not filename or filename.startswith(".") or "/" in filename or "\0" in filename:
        return None
    unique, sep, info = filename.partition(INFO_SEPARATOR)
    if not unique:
        return None
    flags = frozenset(LETTER_FLAGS[c] for c in info if c in LETTER_FLAGS) if sep else frozenset()
    match = _SIZE.search(unique)
    return MaildirName(unique, flags, int(match.group(1)) if match else None)


def make_unique(seconds: int, token: str, host: str, size: int) -> str:
    """``<time>.<token>.<host>,S=<size>``: unique without a lock (time + random token)."""
    host = host.replace("/", "\\057").replace(":", "\\072")
    unique = f"{seconds}.{token}.{host},S={size}"
    if not _SAFE_UNIQUE.match(unique):
        unique = f"{seconds}.{token}.localhost,S={size}"
    return unique


def letters_of(flags: frozenset[str]) -> str:
    return "".join(sorted(FLAG_LETTERS[f] for f in flags if f in FLAG_LETTERS))
