"""The maildrop of one POP3 session (Twisted's ``pop3.IMailbox``) over a Maildir folder.

POP3 sees the messages present at login, numbered from 1 (RFC 1939 §5); DELE only marks,
QUIT (``sync``) removes. The UIDL is derived from the folder's UIDVALIDITY and the IMAP
UID, so it stays the same across sessions and restarts and never names another message.
"""

from __future__ import annotations

import io

from twisted.mail import pop3
from zope.interface import implementer

from smtp.imap.message import MaildirMessage
from smtp.maildir.folder import Entry, MaildirFolder


@implementer(pop3.IMailbox)
class Maildrop:
    def __init__(self, folder: MaildirFolder) -> None:
        self.folder = folder
        folder.refresh()
        self._entries: list[Entry] = [e for u in folder.uids() if (e := folder.get(u))]
        self._deleted: set[int] = set()

    def listMessages(self, i: int | None = None) -> int | list[int]:
        if i is None:
            return [0 if n in self._deleted else self.folder.size_of(e)
                    for n, e in enumerate(self._entries)]
        self._check(i)
        return self.folder.size_of(self._entries[i])

    def getMessage(self, i: int) -> io.BytesIO:
        self._check(i)
        return io.BytesIO(MaildirMessage(self.folder, self._entries[i], recent=False).data())

    def getUidl(self, i: int) -> bytes:
        self._check(i)
        return b"%08x%08x" % (self._entries[i].uid, self.folder.validity)

    def deleteMessage(self, i: int) -> None:
        self._check(i)
        self._deleted.add(i)

    def undeleteMessages(self) -> None:
        self._deleted.clear()

    def sync(self) -> None:
        self.folder.expunge([self._entries[i].uid for i in sorted(self._deleted)])
        self._deleted.clear()

    def _check(self, i: int) -> None:
        if not 0 <= i < len(self._entries) or i in self._deleted:
            raise ValueError("no such message")
