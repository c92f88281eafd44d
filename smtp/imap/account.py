"""What a logged-in IMAP client may open (Twisted's ``IAccount``): one mailbox's folders.

INBOX is the mailbox's Maildir; other folders (Sent, Drafts, Trash… made by webmail apps
and mail clients) are its Maildir++ subfolders. An app's recvmail login and a user's login
both open exactly the mailbox the ``Grant`` names, nothing beside it.
"""

from __future__ import annotations

import fnmatch
import shutil
from collections.abc import Callable

from twisted.mail import imap4
from zope.interface import implementer

from smtp.imap.view import MailboxView
from smtp.maildir.access import Grant
from smtp.maildir.store import INBOX, BadFolderName, MailboxStore


@implementer(imap4.IAccount, imap4.INamespacePresenter)
class MaildirAccount:
    def __init__(
        self, grant: Grant, mailboxes: MailboxStore, *, max_size: int,
        on_append: Callable[[int], None] | None = None,
    ) -> None:
        self.grant = grant
        self._mailboxes = mailboxes
        self._max_size = max_size
        self._on_append = on_append
        self._subscribed: set[str] = set()

    @property
    def address(self) -> str:
        return self.grant.inbox

    def _name(self, name: str | bytes) -> str:
        text = name.decode("utf-8", "replace") if isinstance(name, bytes) else name
        text = text.strip("/")
        return INBOX if text.upper() == INBOX else text

    def _exists(self, name: str) -> bool:
        return name in self._mailboxes.folder_names(self.address)

    def select(self, name: str | bytes, rw: bool = True) -> MailboxView | None:
        folder_name = self._name(name)
        try:
            if folder_name != INBOX and not self._exists(folder_name):
                return None
            folder = self._mailboxes.folder(self.address, folder_name)
        except BadFolderName:
            return None
        return MailboxView(folder, folder_name, writeable=bool(rw), max_size=self._max_size,
                           on_append=self._on_append)

    def create(self, pathspec: str | bytes) -> bool:
        name = self._name(pathspec)
        if name == INBOX or self._exists(name):
            raise imap4.MailboxCollision(name)
        try:
            self._mailboxes.create_folder(self.address, name)
        except BadFolderName as exc:
            raise imap4.MailboxException(
                "folder names may use letters, digits, space and _&,+'()- only"
            ) from exc
        return True

    def addMailbox(self, name: str, mbox: object = None) -> bool:
        return self.create(name)

    def delete(self, name: str | bytes) -> bool:
        folder = self._name(name)
        if folder == INBOX:
            raise imap4.MailboxException("INBOX cannot be deleted")
        if not self._exists(folder):
            raise imap4.MailboxException("no such mailbox")
        path = self._mailboxes.folder_path(self.address, folder)
        shutil.rmtree(path)
        self._mailboxes.forget_folder(path)
        self._subscribed.discard(folder)
        return True

    def rename(self, oldname: str | bytes, newname: str | bytes) -> bool:
        old, new = self._name(oldname), self._name(newname)
        if old == INBOX:
            raise imap4.MailboxException("renaming INBOX is not supported")
        if not self._exists(old):
            raise imap4.NoSuchMailbox(old)
        if new == INBOX or self._exists(new):
            raise imap4.MailboxCollision(new)
        try:
            target = self._mailboxes.folder_path(self.address, new)
        except BadFolderName as exc:
            raise imap4.MailboxException("bad folder name") from exc
        source = self._mailboxes.folder_path(self.address, old)
        source.rename(target)
        self._mailboxes.forget_folder(source)
        return True

    def isSubscribed(self, name: str | bytes) -> bool:
        folder = self._name(name)
        return folder == INBOX or folder in self._subscribed or self._exists(folder)

    def subscribe(self, name: str | bytes) -> bool:
        self._subscribed.add(self._name(name))
        return True

    def unsubscribe(self, name: str | bytes) -> bool:
        self._subscribed.discard(self._name(name))
        return True

    def listMailboxes(self, ref: str | bytes, wildcard: str | bytes) -> list[tuple[str, Info]]:
        pattern = self._name(ref) if ref else ""
        wild = wildcard.decode("utf-8", "replace") if isinstance(wildcard, bytes) else wildcard
        pattern = (pattern + "/" + wild).strip("/") if pattern else wild
        glob = pattern.replace("*", "\0").replace("%", "\0").replace("\0", "*")
        found: list[tuple[str, Info]] = []
        for folder in self._mailboxes.folder_names(self.address):
            if fnmatch.fnmatchcase(folder, glob) or (
                folder == INBOX and fnmatch.fnmatchcase(INBOX, glob.upper())
            ):
                found.append((folder, Info()))
        return found

    # INamespacePresenter: one personal namespace, no shared ones.
    def getPersonalNamespaces(self) -> list[list[str]]:
        return [["", "/"]]

    def getSharedNamespaces(self) -> None:
        return None

    def getUserNamespaces(self) -> None:
        return None


@implementer(imap4.IMailboxInfo)
class Info:
    """What LIST says about a folder: no flags of its own, ``/`` as the delimiter."""

    def getFlags(self) -> list[str]:
        return []

    def getHierarchicalDelimiter(self) -> str:
        return "/"
