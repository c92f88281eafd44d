"""Binds: turn the bind DN and password into credentials, and ask the portal.

This module never looks at a password: every form ends in ``portal.login`` (rate limits,
audit, the verified cache), whose typed failures ``ldap.results`` maps to result codes.
ldaptor's own bind (``entry.bind`` against a password in the tree) is never used.

Forms (SPEC.md "Binds"):
- ``<type>=<login>,ou=users``: the login is a user id, a username, or (with ``@``) a primary
  email; ``mail=`` forces an email. Main password, an app password of the calling app, or
  password + 6-digit TOTP for users who opted into LDAP 2FA. Needs a calling app.
- ``cn=<app id>,ou=apps``: the app's LDAP bind password, checked (Cloudron ignored it).
- ``cn=<address>,ou=sendmail|ou=recvmail``: an app's mail password for that app's own
  address; otherwise the mailbox owner's password or ``mail`` app password.
- ``cn=<address>[,domain=<domain>],ou=mailboxes``: the mailbox owner; the domain must
  receive mail.
- ``cn=admin,ou=system``: the directory-server admin (optional mode; see config).
"""

from __future__ import annotations

import hmac
import logging

from gateway.audit import AuditLog
from gateway.auth import (
    AppIdentity,
    AppSecret,
    BadCredentials,
    LoginContext,
    Portal,
    UserIdentity,
    UserPassword,
)
from gateway.config.ldap import LdapConfig
from ldap.caller import CallerResolver, Network, Session, address_in
from ldap.dn import RDN, parse_dn, rdns_key
from ldap.entries import Tree
from ldap.errors import (
    ConfidentialityRequired,
    InsufficientAccess,
    NoSuchObject,
    UnwillingToPerform,
)
from ldap.index import DirectoryIndex

log = logging.getLogger(__name__)


class BindHandler:
    def __init__(
        self,
        portal: Portal,
        index: DirectoryIndex,
        resolver: CallerResolver,
        config: LdapConfig,
        audit: AuditLog,
        directory_allowlist: tuple[Network, ...],
    ) -> None:
        self._portal = portal
        self._index = index
        self._tree: Tree = index.tree
        self._resolver = resolver
        self._config = config
        self._audit = audit
        self._allowlist = directory_allowlist
        admin = parse_dn(f"cn=admin,{self._tree.ou_dn['system']}")
        self._admin_key = rdns_key(admin)
        # Checked first, as they are cheap: a user's DN has the admin's depth, and its
        # parent's key is cached (rdns_key keeps the few keys asked for again and again).
        self._admin_depth = len(admin)
        self._admin_parent_key = rdns_key(admin[1:])

    async def bind(self, session: Session, dn: str, password: str) -> None:
        """Bind ``session`` as ``dn``, or raise the failure (the session is then anonymous)."""
        session.reset_login()
        if not dn:
            if password:
                raise UnwillingToPerform("a password needs a bind DN")
            return  # anonymous: keeps whichever app the connection acts for
        if not password:
            # RFC 4513 5.1.2: an "unauthenticated" bind (DN, no password) is refused,
            # so an app that treats "bind succeeded" as "password right" stays safe.
            raise UnwillingToPerform("unauthenticated bind (DN without password) is refused")
        rdns = parse_dn(dn)
        rel = self._relative(rdns)
        if rel is None or len(rel) < 2:
            raise NoSuchObject("no such entry")
        if (self._config.directory_server and len(rdns) == self._admin_depth
                and rdns_key(rdns[1:]) == self._admin_parent_key
                and rdns_key(rdns) == self._admin_key):
            self._admin(session, password)
        else:
            await self._login(session, rel, password)
        session.bound_dn = dn

    def _relative(self, rdns: tuple[RDN, ...]) -> tuple[RDN, ...] | None:
        base = self._tree.base_rdns
        if len(rdns) <= len(base):
            return None
        if rdns_key(rdns[len(rdns) - len(base):]) != self._tree.base_key:
            return None
        return rdns[: len(rdns) - len(base)]

    async def _login(self, session: Session, rel: tuple[RDN, ...], password: str) -> None:
        region = rel[-1]
        if len(region) != 1 or region[0][0] != "ou":
            raise NoSuchObject("no such entry")
        ou = region[0][1].strip().lower()
        first_type, first_value = rel[0][0]
        if ou == "users" and len(rel) == 2:
            await self._user(session, first_type, first_value, password)
        elif ou == "apps" and len(rel) == 2 and first_type == "cn":
            await self._app(session, first_value.strip(), password)
        elif ou in ("sendmail", "recvmail") and len(rel) == 2 and first_type == "cn":
            await self._mail_addon(session, ou, first_value.strip().lower(), password)
        elif ou == "mailboxes" and first_type == "cn" and len(rel) in (2, 3):
            await self._mailbox(session, first_value.strip().lower(), password)
        else:
            raise NoSuchObject("no such entry")

    def _context(self, session: Session, app_id: str | None) -> LoginContext:
        return LoginContext(
            door="ldap", source=session.peer, app_id=app_id, second_factor="ldap_opt_in"
        )

    async def _user(self, session: Session, attribute_type: str, login: str,
                    password: str) -> None:
        login = login.strip()
        if not login or (attribute_type == "mail" and "@" not in login):
            raise NoSuchObject("no such user")
        app_id = self._resolver.app_id(session)
        if app_id is None and not session.directory_client:
            raise InsufficientAccess(
                "which app is asking is unknown: connect from the app, or bind as it first"
            )
        identity = await self._portal.login(
            UserPassword(login, password, self._context(session, app_id),
                         app_passwords_for=app_id)
        )
        assert isinstance(identity, UserIdentity)
        session.bound_user = identity

    async def _app(self, session: Session, app_id: str, password: str) -> None:
        addressed = self._resolver.address_app(session.peer, session.local)
        if addressed is not None and addressed != app_id:
            raise InsufficientAccess("this connection belongs to another app")
        identity = await self._portal.login(
            AppSecret("ldap", app_id, password, self._context(session, app_id))
        )
        assert isinstance(identity, AppIdentity)
        session.bound_app = identity.app_id

    async def _mail_addon(self, session: Session, addon: str, address: str,
                          password: str) -> None:
        if address.count("@") != 1:
            raise NoSuchObject("not a mail address")
        app_id = self._index.mail_login.get((addon, address))
        if app_id is not None:
            # The app's own mail credential, valid for that app's own address only.
            await self._portal.login(
                AppSecret(addon, address, password, self._context(session, app_id))
            )
            return
        domain = self._index.mail_domains.get(address.rpartition("@")[2])
        # recvmail reads mail, so the domain must receive it; apps may send from any domain.
        if domain is None or (addon == "recvmail" and not domain.receives):
            raise NoSuchObject("no such mailbox")
        await self._mailbox_owner(session, address, password)

    async def _mailbox(self, session: Session, address: str, password: str) -> None:
        domain = self._index.mail_domains.get(address.rpartition("@")[2])
        if address.count("@") != 1 or domain is None or not domain.receives:
            raise NoSuchObject("no such mailbox")
        await self._mailbox_owner(session, address, password)

    async def _mailbox_owner(self, session: Session, address: str, password: str) -> None:
        box = self._index.mailbox_of_kind(address, "mailbox")
        if box is None or box.owner_type != "user" or not box.owner_id:
            raise NoSuchObject("no such mailbox")
        identity = await self._portal.login(
            UserPassword(box.owner_id, password, self._context(session, None),
                         app_passwords_for="mail")
        )
        assert isinstance(identity, UserIdentity)
        session.bound_user = identity

    def _admin(self, session: Session, password: str) -> None:
        """Directory-server mode: the configured secret, from an allowlisted address.

        Not a user or app credential, so not a portal login; compared in constant time and
        audited like one.
        """
        config = self._config
        if not address_in(session.peer, self._allowlist):
            self._audit.record("directory.login.failed", door="ldap", source=session.peer,
                               reason="address not allowlisted")
            raise InsufficientAccess("this address may not use directory-server mode")
        if config.directory_require_tls and not session.tls:
            raise ConfidentialityRequired("directory-server binds need LDAPS or StartTLS")
        secret = config.directory_secret
        if secret is None or not hmac.compare_digest(password.encode(), secret.value.encode()):
            self._audit.record("directory.login.failed", door="ldap", source=session.peer,
                               reason="wrong_secret")
            raise BadCredentials()
        self._audit.record("directory.login", door="ldap", source=session.peer)
        session.directory_client = True
