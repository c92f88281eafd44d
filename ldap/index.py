"""The directory's in-memory index of the store: built once, then patched per change.

Users are kept as ready-made entries plus value indexes on the attributes filters name
(uid, cn, entryuuid, username, samaccountname, mail, memberof, objectclass), so an equality
search touches the few entries it answers instead of every user. Apps are indexed by the
addresses that identify them; mail by domain and address. ``generation`` moves on every
patch, so caches derived from the index (group member lists per app) know when to drop.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable
from dataclasses import dataclass

from gateway.auth.access import may_use
from gateway.store import NotFound, Store
from gateway.store.models import App, Group, Mailbox, MailDomain, User
from ldap.entries import EntryFactory, Tree
from ldap.entry import Entry
from ldap.filters import Index
from ldap.schema import Normalized, normalize, syntax_of

log = logging.getLogger(__name__)

INDEXED = ("uid", "cn", "entryuuid", "username", "samaccountname", "mail", "memberof",
           "objectclass")
MAIL_ADDONS = ("sendmail", "recvmail")


@dataclass(slots=True)
class UserRecord:
    user: User
    group_ids: frozenset[str]
    entry: Entry

    @property
    def listed(self) -> bool:
        """Users without a username (invited, unfinished) and inactive ones are invisible."""
        return self.user.active and bool(self.user.username)


class DirectoryIndex:
    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.entries = EntryFactory(tree)
        self.generation = 0
        self.users: dict[str, UserRecord] = {}
        self.user_by_key: dict[str, UserRecord] = {}
        # attribute -> normalised value -> one entry key, or a set of them (ldap.filters.Index)
        self.values: Index = {a: {} for a in INDEXED}
        self.groups: dict[str, Group] = {}
        self.group_by_name: dict[str, Group] = {}
        self.members: dict[str, set[str]] = {}
        self.apps: dict[str, App] = {}
        self.app_credentials: dict[str, dict[str, dict[str, str]]] = {}
        self.app_by_source: dict[str, str] = {}
        self.app_by_server: dict[str, str] = {}
        self.mail_login: dict[tuple[str, str], str] = {}
        self.mail_domains: dict[str, MailDomain] = {}
        self.mailboxes: dict[str, Mailbox] = {}
        self._ordered: list[str] | None = None
        self.app_listeners: list[Callable[[], None]] = []

    # -- reading ---------------------------------------------------------------------------

    def ordered_user_keys(self) -> builtins.list[str]:
        """Every user entry's key, by username (Cloudron's order), for scans and paging."""
        if self._ordered is None:
            records = sorted(self.users.values(), key=lambda r: (r.user.username or "", r.user.id))
            self._ordered = [r.entry.key for r in records]
        return self._ordered

    def visible(self, record: UserRecord, app: App | None) -> bool:
        """Listed, and (when an app asks) allowed to use it; ``None`` sees every listed user."""
        if not record.listed:
            return False
        if app is None:
            return True
        return may_use(
            app.access, user_id=record.user.id, is_admin=record.user.is_admin,
            group_ids=record.group_ids,
        )

    def app_addons(self, app: App) -> builtins.list[str]:
        addons = app.manifest.get("addons") or {}
        return list(addons) if isinstance(addons, dict | list) else []

    def mailbox_of_kind(self, address: str, kind: str) -> Mailbox | None:
        box = self.mailboxes.get(address.lower())
        if box is None or box.kind != kind or not box.active:
            return None
        if box.domain not in self.mail_domains:
            return None
        return box

    # -- building ----------------------------------------------------------------------------

    async def load(self, store: Store) -> None:
        """Read everything (start-up, or a ``reset`` change)."""
        users = await store.users.list()
        groups = await store.groups.list()
        pairs = await store.groups.memberships()
        apps = await store.apps.list()
        credentials = {app.id: await store.apps.all_credentials(app.id) for app in apps}
        domains = await store.mail.domains()
        boxes = await store.mail.mailboxes()

        self.users.clear()
        self.user_by_key.clear()
        for values in self.values.values():
            values.clear()
        self.groups = {g.id: g for g in groups}
        self.group_by_name = {g.name: g for g in groups}
        self.members = {g.id: set() for g in groups}
        user_groups: dict[str, set[str]] = {}
        for group_id, user_id in pairs:
            self.members.setdefault(group_id, set()).add(user_id)
            user_groups.setdefault(user_id, set()).add(group_id)
        for user in users:
            self._put_user(user, frozenset(user_groups.get(user.id, ())))
        self.apps.clear()
        self.app_credentials.clear()
        for app in apps:
            self.apps[app.id] = app
            self.app_credentials[app.id] = credentials[app.id]
        self._reindex_apps()
        self.mail_domains = {d.domain: d for d in domains}
        self.mailboxes = {b.address: b for b in boxes}
        self._touched()
        log.info(
            "directory loaded: %d users, %d groups, %d apps, %d mail addresses",
            len(self.users), len(self.groups), len(self.apps), len(self.mailboxes),
        )

    def _put_user(self, user: User, group_ids: frozenset[str]) -> None:
        names = [self.groups[g].name for g in group_ids if g in self.groups]
        record = UserRecord(user, group_ids, self.entries.user(user, names))
        old = self.users.get(user.id)
        if old is not None:
            self._unindex(old)
        self.users[user.id] = record
        self.user_by_key[record.entry.key] = record
        key = record.entry.key
        for name in INDEXED:
            bucket = self.values[name]
            for norm in _norms(record.entry, name):
                held = bucket.get(norm)
                if held is None:
                    bucket[norm] = key
                elif isinstance(held, str):
                    if held != key:
                        bucket[norm] = {held, key}
                else:
                    held.add(key)
        if old is None or old.user.username != user.username:
            self._ordered = None

    def _unindex(self, record: UserRecord) -> None:
        key = record.entry.key
        self.user_by_key.pop(key, None)
        for name in INDEXED:
            bucket = self.values[name]
            for norm in _norms(record.entry, name):
                held = bucket.get(norm)
                if held is None:
                    continue
                if isinstance(held, str):
                    if held == key:
                        del bucket[norm]
                    continue
                held.discard(key)
                if len(held) == 1:
                    bucket[norm] = next(iter(held))
                elif not held:
                    del bucket[norm]

    def _touched(self) -> None:
        self.generation += 1

    # -- patching (one record at a time, from change notifications) ------------------------

    async def refresh_user(self, store: Store, user_id: str) -> None:
        try:
            user = await store.users.get(user_id)
        except NotFound:
            old = self.users.pop(user_id, None)
            if old is not None:
                self._unindex(old)
                self._ordered = None
            for members in self.members.values():
                members.discard(user_id)
            self._touched()
            return
        groups = await store.groups.of_user(user_id)
        for g in groups:
            self.groups.setdefault(g.id, g)
            self.group_by_name.setdefault(g.name, g)
        ids = frozenset(g.id for g in groups)
        for group_id, members in self.members.items():
            if group_id in ids:
                members.add(user_id)
            else:
                members.discard(user_id)
        for group_id in ids:
            self.members.setdefault(group_id, set()).add(user_id)
        self._put_user(user, ids)
        self._touched()

    async def refresh_group(self, store: Store, group_id: str) -> None:
        try:
            group = await store.groups.get(group_id)
        except NotFound:
            old = self.groups.pop(group_id, None)
            if old is not None:
                self.group_by_name.pop(old.name, None)
            previous = self.members.pop(group_id, set())
        else:
            self.groups[group_id] = group
            self.group_by_name[group.name] = group
            previous = self.members.get(group_id, set())
            self.members[group_id] = set(await store.groups.members(group_id))
        # Members' memberof names the group: rebuild those entries.
        for user_id in previous | self.members.get(group_id, set()):
            record = self.users.get(user_id)
            if record is not None:
                ids = frozenset(
                    g for g, members in self.members.items() if user_id in members
                )
                self._put_user(record.user, ids)
        self._touched()

    async def refresh_app(self, store: Store, app_id: str) -> None:
        try:
            app = await store.apps.get(app_id)
            credentials = await store.apps.all_credentials(app_id)
        except NotFound:
            self.apps.pop(app_id, None)
            self.app_credentials.pop(app_id, None)
        else:
            self.apps[app_id] = app
            self.app_credentials[app_id] = credentials
        self._reindex_apps()
        self._touched()

    def _reindex_apps(self) -> None:
        self.app_by_source = {a.address: a.id for a in self.apps.values() if a.address}
        self.app_by_server = {}
        self.mail_login = {}
        for app_id, credentials in self.app_credentials.items():
            server = credentials.get("ldap", {}).get("server")
            if server:
                self.app_by_server[server] = app_id
            for addon in MAIL_ADDONS:
                login = credentials.get(addon, {}).get("username")
                if login:
                    self.mail_login[(addon, login.lower())] = app_id
        for listener in list(self.app_listeners):
            try:
                listener()
            except Exception:
                log.exception("app listener failed")

    def ldap_endpoints(self) -> builtins.list[tuple[str, str, int | None]]:
        """(app id, server address, port or None) of every app with its own LDAP endpoint."""
        found = []
        for app_id, credentials in self.app_credentials.items():
            ldap = credentials.get("ldap", {})
            if ldap.get("server"):
                port = ldap.get("port", "")
                found.append((app_id, ldap["server"], int(port) if port.isdigit() else None))
        return found

    async def refresh_mail_domain(self, store: Store, domain: str) -> None:
        try:
            self.mail_domains[domain] = await store.mail.domain(domain)
        except NotFound:
            self.mail_domains.pop(domain, None)
            for address in [a for a, b in self.mailboxes.items() if b.domain == domain]:
                del self.mailboxes[address]
        self._touched()

    async def refresh_mailbox(self, store: Store, address: str) -> None:
        try:
            self.mailboxes[address] = await store.mail.mailbox(address)
        except NotFound:
            self.mailboxes.pop(address, None)
        self._touched()

    def mailboxes_of(self, domain: str) -> builtins.list[Mailbox]:
        return sorted(
            (b for b in self.mailboxes.values()
             if b.domain == domain and b.kind == "mailbox" and b.active),
            key=lambda b: b.name,
        )


def _norms(entry: Entry, name: str) -> list[Normalized]:
    """Index keys of one attribute, without caching them on the entry (most are never
    compared again: the index answers for them)."""
    attribute = entry.attributes.get(name)
    if attribute is None:
        return []
    syntax = syntax_of(name)
    found = []
    for value in attribute.values:
        norm = normalize(syntax, value)
        if norm is not None:
            found.append(norm)
    return found
