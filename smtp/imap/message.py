"""One Maildir message as twisted.mail.imap4 sees it (``IMessage``, ``IMessageFile``).

The file is read once per FETCH of it and kept as bytes: the raw header section and body
are served as stored (``BODY[HEADER]`` keeps repeated fields such as Received, which a
dict of headers would lose). Files written by other tools with bare LF line ends are
served with CRLF, as IMAP requires. MIME structure is parsed only when a client asks for
BODYSTRUCTURE or a numbered part.
"""

from __future__ import annotations

import email
import email.policy
import io
import time
from email.message import Message
from typing import Any

from twisted.mail import imap4
from zope.interface import implementer

from smtp.maildir.folder import Entry, MaildirFolder


def split_header(data: bytes) -> int:
    """Offset just past the blank line that ends the header section (or the end)."""
    if data.startswith(b"\r\n"):
        return 2
    end = data.find(b"\r\n\r\n")
    return len(data) if end < 0 else end + 4


def header_fields(header: bytes) -> list[tuple[str, bytes]]:
    """``(lowercase name, raw field incl. folding and CRLF)`` for each field."""
    fields: list[tuple[str, bytes]] = []
    for line in header.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and fields:
            name, raw = fields[-1]
            fields[-1] = (name, raw + line + b"\r\n")
            continue
        name = line.split(b":", 1)[0].strip().decode("ascii", "replace").lower()
        fields.append((name, line + b"\r\n"))
    return fields


def unfold(raw: bytes) -> str:
    value = raw.split(b":", 1)[1] if b":" in raw else b""
    return value.decode("utf-8", "replace").replace("\r\n", "").strip()


def select_fields(header: bytes, names: list[str], negate: bool) -> bytes:
    """BODY[HEADER.FIELDS (…)] / .NOT: the chosen fields as stored, plus the blank line."""
    wanted = {n.lower() for n in names}
    chosen = [raw for name, raw in header_fields(header) if (name in wanted) != negate]
    return b"".join(chosen) + b"\r\n"


@implementer(imap4.IMessagePart)
class MimePart:
    """A MIME part for BODYSTRUCTURE and BODY[n] (parsed with the stdlib)."""

    def __init__(self, part: Message) -> None:
        self._part = part

    def getHeaders(self, negate: bool, *names: str) -> dict[str, str]:
        wanted = {n.lower() for n in names}
        return {
            k.lower(): str(v) for k, v in self._part.items()
            if not wanted or (k.lower() in wanted) != negate
        }

    def getBodyFile(self) -> io.BytesIO:
        payload: Any = self._part.get_payload()
        if isinstance(payload, list):
            raw = b"".join(p.as_bytes() for p in payload)
        else:
            raw = str(payload).encode("utf-8", "surrogateescape")
        return io.BytesIO(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))

    def getSize(self) -> int:
        return len(self.getBodyFile().getvalue())

    def isMultipart(self) -> bool:
        return self._part.is_multipart()

    def getSubPart(self, part: int) -> MimePart:
        payload: Any = self._part.get_payload()
        if not isinstance(payload, list):
            raise TypeError("not a multipart message")
        return MimePart(payload[part])


@implementer(imap4.IMessage, imap4.IMessageFile)
class MaildirMessage:
    def __init__(self, folder: MaildirFolder, entry: Entry, *, recent: bool) -> None:
        self.folder = folder
        self.entry = entry
        self.recent = recent
        self._data: bytes | None = None
        self._mime: Message | None = None

    # -- the bytes -------------------------------------------------------------------

    def data(self) -> bytes:
        if self._data is None:
            # The current entry: a flag change since the FETCH began renamed the file.
            current = self.folder.get(self.entry.uid) or self.entry
            try:
                with open(self.folder.file_name(current), "rb") as fh:
                    raw = fh.read()
            except FileNotFoundError:
                raw = b""  # expunged by another session since: served as empty
            if raw.count(b"\n") != raw.count(b"\r\n"):
                raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            self._data = raw
        return self._data

    def header(self) -> bytes:
        if self._data is None:
            cached = self.folder.cached_header(self.entry.uid)
            if cached is not None:
                return cached
        data = self.data()
        header = data[: split_header(data)]
        self.folder.remember_header(self.entry.uid, header)
        return header

    def body(self) -> bytes:
        data = self.data()
        return data[split_header(data):]

    def _parsed(self) -> Message:
        if self._mime is None:
            self._mime = email.message_from_bytes(self.data(), policy=email.policy.compat32)
        return self._mime

    # -- IMessage --------------------------------------------------------------------

    def getUID(self) -> int:
        return self.entry.uid

    def getFlags(self) -> list[str]:
        current = self.folder.get(self.entry.uid) or self.entry
        flags = sorted(current.flags)
        return [*flags, "\\Recent"] if self.recent else flags

    def getInternalDate(self) -> str:
        when = self.folder.internal_date(self.entry)
        return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(when))

    def getHeaders(self, negate: bool, *names: str) -> dict[str, str]:
        wanted = {n.lower() for n in names}
        found: dict[str, str] = {}
        for name, raw in header_fields(self.header()):
            if (not wanted and negate) or ((name in wanted) != negate):
                found.setdefault(name, unfold(raw))
        return found

    def getBodyFile(self) -> io.BytesIO:
        return io.BytesIO(self.body())

    def getSize(self) -> int:
        if self._data is None and self.entry.size is not None:
            return self.entry.size
        return len(self.data())

    def isMultipart(self) -> bool:
        return self._parsed().is_multipart()

    def getSubPart(self, part: int) -> MimePart:
        payload: Any = self._parsed().get_payload()
        if not isinstance(payload, list):
            raise TypeError("not a multipart message")
        return MimePart(payload[part])

    def open(self) -> io.BytesIO:
        return io.BytesIO(self.data())
