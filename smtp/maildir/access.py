"""Which mailbox a reader login opens (IMAP and POP3 share it).

No password is verified here: the login is turned into credentials and the portal decides.

- The app's recvmail username (its own address) → ``AppSecret("recvmail", …)``; the portal
  compares the password with *that* app's only, so it opens that app's inbox and nothing
  else (Cloudron accepted any app's password for any address, C.3 step 4).
- A mailbox address owned by a user → the owner's password or a ``mail`` app password;
  it opens that mailbox (people log in with the full mailbox address, C.3).
- Anything else (username, primary email) → the user; it opens their first mailbox on a
  domain that receives mail.

A domain that does not receive mail opens nothing (``NoAccess``), as Cloudron answers a
recvmail bind there with noSuchObject.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.auth import (
    AppIdentity,
    AppSecret,
    Identity,
    LoginContext,
    NoAccess,
    Portal,
    UserIdentity,
    UserPassword,
)
from gateway.auth.credentials import Door
from gateway.store import NotFound, Store

RECVMAIL = "recvmail"


@dataclass(frozen=True)
class Grant:
    """A successful reader login: who, and which mailbox is their INBOX."""

    identity: Identity
    inbox: str
    quota: int = 0  # the mailbox's own quota_bytes (0: the configured default)

    @property
    def app_id(self) -> str | None:
        return self.identity.app_id if isinstance(self.identity, AppIdentity) else None


class ReaderLogin:
    def __init__(self, portal: Portal, store: Store) -> None:
        self._portal = portal
        self._store = store

    async def login(self, login: str, password: str, door: Door, source: str | None) -> Grant:
        """A Grant, or a ``LoginFailed`` (incl. ``RateLimited``) / ``AuthUnavailable``."""
        context = LoginContext(door=door, source=source, second_factor="skip")
        address = login.strip().lower()
        named_box: str | None = None
        creds: AppSecret | UserPassword
        if "@" in address and await self._store.apps.find_by_credential(
            RECVMAIL, "username", address
        ):
            creds = AppSecret(RECVMAIL, address, password, context)
        else:
            owner = await self._mailbox_owner(address) if "@" in address else None
            if owner is not None:
                named_box = address
                creds = UserPassword(owner, password, context, app_passwords_for="mail")
            else:
                creds = UserPassword(login.strip(), password, context, app_passwords_for="mail")
        identity = await self._portal.login(creds)
        if isinstance(identity, AppIdentity):
            inbox = identity.principal
            if not await self._receives(inbox):
                raise NoAccess("the app's mail domain does not receive mail")
            return Grant(identity, inbox, await self._quota(inbox))
        assert isinstance(identity, UserIdentity)
        if named_box is not None:
            if not await self._receives(named_box):
                raise NoAccess("the mailbox's domain does not receive mail")
            return Grant(identity, named_box, await self._quota(named_box))
        for box in await self._store.mail.owned_by(identity.user_id):
            if box.kind == "mailbox" and box.owner_type == "user" and await self._receives(
                box.address
            ):
                return Grant(identity, box.address, box.quota_bytes)
        raise NoAccess("no mailbox on a domain that receives mail")

    async def _quota(self, address: str) -> int:
        try:
            return (await self._store.mail.mailbox(address)).quota_bytes
        except NotFound:
            return 0

    async def _mailbox_owner(self, address: str) -> str | None:
        try:
            box = await self._store.mail.mailbox(address)
        except NotFound:
            return None
        if box.kind != "mailbox" or box.owner_type != "user" or not box.owner_id:
            return None
        return box.owner_id

    async def _receives(self, address: str) -> bool:
        try:
            return (await self._store.mail.domain(address.rpartition("@")[2])).receives
        except NotFound:
            return False
