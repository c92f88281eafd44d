"""A selected mailbox as one IMAP session sees it (Twisted's ``IMailbox``).

Sequence numbers are per session (RFC 3501 §2.3.1.2): the view keeps its own list of UIDs
and changes it only when it may tell the client. New messages are appended at once (and
announced with ``EXISTS``, allowed at any time); messages another session expunged stay
in this view until ``sync`` (NOOP, CHECK, IDLE), which answers their sequence numbers for
``EXPUNGE`` responses, high to low, so each number is valid when sent.
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.mail import imap4
from zope.interface import implementer

from smtp.imap import search
from smtp.imap.message import MaildirMessage
from smtp.imap.ranges import pick
from smtp.maildir import names
from smtp.maildir.folder import MaildirFolder

log = logging.getLogger(__name__)

SYSTEM_FLAGS = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"]


class AppendTooLarge(imap4.MailboxException):
    """An APPEND over the size limit."""


class OverQuota(imap4.MailboxException):
    """An APPEND that would take the mailbox past its quota (RFC 9208 [OVERQUOTA])."""


@implementer(imap4.IMailbox, imap4.ISearchableMailbox, imap4.ICloseableMailbox)
class MailboxView:
    def __init__(
        self, folder: MaildirFolder, name: str, *, writeable: bool, max_size: int,
        on_append: Callable[[int], None] | None = None,
    ) -> None:
        self.folder = folder
        self.name = name
        self._writeable = writeable
        self._max_size = max_size
        self._on_append = on_append
        folder.refresh()
        if writeable:
            self._recent = set(folder.take_new())
        else:
            self._recent = {u for u in folder.uids() if (e := folder.get(u)) and e.subdir == "new"}
        self._uids: list[int] = list(folder.uids())
        self._listeners: list[Any] = []
        folder.listen(self)

    # -- IMailboxInfo / IMailbox -----------------------------------------------------

    def getFlags(self) -> list[str]:
        return list(SYSTEM_FLAGS)

    def getHierarchicalDelimiter(self) -> str:
        return "/"

    def getUIDValidity(self) -> int:
        return self.folder.validity

    def getUIDNext(self) -> int:
        return self.folder.next_uid

    def getUID(self, message: int) -> int:
        return self._uids[message - 1]

    def getMessageCount(self) -> int:
        return len(self._uids)

    def getRecentCount(self) -> int:
        return len(self._recent)

    def getUnseenCount(self) -> int:
        count = 0
        for uid in self._uids:
            entry = self.folder.get(uid)
            if entry is not None and "\\Seen" not in entry.flags:
                count += 1
        return count

    def isWriteable(self) -> bool:
        return self._writeable

    def destroy(self) -> None:
        raise imap4.MailboxException("mailboxes are deleted with DELETE")

    def requestStatus(self, names: list[str]) -> dict[str, int]:
        return imap4.statusRequestHelper(self, names)  # type: ignore[no-any-return]

    def addListener(self, listener: Any) -> None:
        self._listeners.append(listener)

    def removeListener(self, listener: Any) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def close(self) -> None:
        self.folder.unlisten(self)
        self._listeners.clear()

    # -- changes -------------------------------------------------------------------

    def folder_changed(self) -> None:
        """A delivery or another session changed the folder: announce new messages."""
        self.folder.refresh()
        added = self._take_added()
        if added:
            for listener in list(self._listeners):
                listener.newMessages(len(self._uids), len(self._recent) or None)

    def _take_added(self) -> list[int]:
        known = self._uids[-1] if self._uids else 0
        added = [u for u in self.folder.uids() if u > known]
        self._uids.extend(added)
        if self._writeable and added:
            self._recent.update(u for u in self.folder.take_new() if u in added)
        return added

    def sync(self) -> tuple[list[int], bool]:
        """Apply what changed since the client last heard: answer the sequence numbers
        gone (high to low) and whether messages were added."""
        self.folder.refresh()
        gone = [i + 1 for i, uid in enumerate(self._uids) if self.folder.get(uid) is None]
        for seq in reversed(gone):
            uid = self._uids.pop(seq - 1)
            self._recent.discard(uid)
        added = self._take_added()
        return list(reversed(gone)), bool(added)

    # -- reading -------------------------------------------------------------------

    def _positions(self, messages: imap4.MessageSet, uid: bool) -> list[int]:
        if uid:
            return pick(messages, self._uids, self._uids[-1] if self._uids else 0)
        count = len(self._uids)
        return [p for p in pick(messages, list(range(1, count + 1)), count)]

    def fetch(self, messages: imap4.MessageSet, uid: bool) -> list[tuple[int, MaildirMessage]]:
        found: list[tuple[int, MaildirMessage]] = []
        for position in self._positions(messages, uid):
            entry = self.folder.get(self._uids[position])
            if entry is None:
                continue  # expunged by another session; EXPUNGE comes with the next sync
            found.append((position + 1, MaildirMessage(
                self.folder, entry, recent=entry.uid in self._recent)))
        return found

    def search(self, query: list[Any], uid: bool) -> list[int]:
        tree = search.parse(query)
        last_seq = len(self._uids)
        last_uid = self._uids[-1] if self._uids else 0
        hits: list[int] = []
        for seq, uid_value in enumerate(self._uids, start=1):
            entry = self.folder.get(uid_value)
            if entry is None:
                continue
            candidate = search.Candidate(
                seq, MaildirMessage(self.folder, entry, recent=uid_value in self._recent),
                last_seq, last_uid,
            )
            if search.matches(tree, candidate):
                hits.append(seq)
        return hits  # Twisted maps them to UIDs for UID SEARCH

    # -- writing -------------------------------------------------------------------

    def store(
        self, messages: imap4.MessageSet, flags: list[str], mode: int, uid: bool
    ) -> dict[int, list[str]]:
        if not self._writeable:
            raise imap4.ReadOnlyMailbox()
        asked = frozenset(_canonical(f) for f in flags)
        result: dict[int, list[str]] = {}
        for position in self._positions(messages, uid):
            entry = self.folder.get(self._uids[position])
            if entry is None:
                continue
            if mode > 0:
                wanted = entry.flags | asked
            elif mode < 0:
                wanted = entry.flags - asked
            else:
                wanted = asked
            now = self.folder.set_flags(entry.uid, wanted)
            if now is None:
                continue
            shown = sorted(now)
            if entry.uid in self._recent:
                shown.append("\\Recent")
            result[position + 1] = shown
        return result

    def mark_seen(self, message: MaildirMessage) -> bool:
        """FETCH of a body without .PEEK sets ``\\Seen`` (RFC 3501 §6.4.5); True if it
        changed."""
        if not self._writeable:
            return False
        entry = self.folder.get(message.entry.uid)
        if entry is None or "\\Seen" in entry.flags:
            return False
        return self.folder.set_flags(entry.uid, entry.flags | {"\\Seen"}) is not None

    def expunge(self) -> list[int]:
        if not self._writeable:
            raise imap4.ReadOnlyMailbox()
        doomed = [
            uid for uid in self._uids
            if (e := self.folder.get(uid)) is not None and "\\Deleted" in e.flags
        ]
        self.folder.expunge(doomed)
        gone, _ = self.sync()
        return gone

    def addMessage(self, message: Any, flags: list[str], date: Any = None) -> defer.Deferred[int]:
        message.seek(0, 2)
        size = message.tell()
        if size > self._max_size:
            return defer.fail(AppendTooLarge(f"message larger than {self._max_size} bytes"))
        message.seek(0)
        data = message.read()
        when = _append_date(date)
        if self._on_append is not None:
            self._on_append(len(data))
        uid = self.folder.append(data, frozenset(_canonical(f) for f in flags), when)
        return defer.succeed(uid)


def _canonical(flag: str | bytes) -> str:
    text = flag.decode("ascii", "replace") if isinstance(flag, bytes) else flag
    for known in names.FLAG_LETTERS:
        if text.lower() == known.lower():
            return known
    return text


def _append_date(date: Any) -> float | None:
    if not date:
        return None
    text = date.decode("ascii", "replace") if isinstance(date, bytes) else str(date)
    parsed = email.utils.parsedate_tz(text.replace("-", " "))
    if parsed is None:
        return None
    return float(email.utils.mktime_tz(parsed))
