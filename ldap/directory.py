"""The tree as one caller sees it: where a DN leads, what lies below, compare.

Read-only and served from the index. Regions guard themselves: people (``ou=users``,
``ou=groups``) need a known app or the directory-server admin, else insufficientAccessRights
(50); mail (``ou=mailboxes``, ``ou=mailaliases``, ``ou=mailinglists``) needs a mail reader.
A search from above a region the caller may not read just leaves it out. Users an app may
not use are absent for that app: in searches, in group member lists, in compare.
"""

from __future__ import annotations

from collections.abc import Iterator

from ldap.caller import Caller
from ldap.dn import RDN, join, normalize_value, parse_dn, rdns_key
from ldap.entries import OUS, SYNTHETIC_GIDS, Tree
from ldap.entry import Entry
from ldap.errors import InsufficientAccess, NoSuchObject
from ldap.filters import CompiledFilter
from ldap.index import DirectoryIndex
from ldap.schema import normalize, syntax_of

SCOPE_BASE, SCOPE_ONE, SCOPE_SUB = 0, 1, 2
PEOPLE = ("users", "groups")
MAIL = ("mailboxes", "mailaliases", "mailinglists")


class Directory:
    def __init__(self, index: DirectoryIndex, *, starttls: bool) -> None:
        self.index = index
        self.tree: Tree = index.tree
        self._starttls = starttls
        self._root_dse = index.entries.root_dse(starttls=starttls)
        self._base = index.entries.base()
        self._ous = {ou: index.entries.ou(ou) for ou in OUS}
        self._users_rdns = parse_dn(self.tree.ou_dn["users"])
        self._group_cache: dict[tuple[str, str], Entry] = {}
        self._group_generation = -1

    @property
    def root_dse(self) -> Entry:
        return self._root_dse

    # -- finding one entry ---------------------------------------------------------------

    def _relative(self, rdns: tuple[RDN, ...]) -> tuple[RDN, ...] | None:
        """The RDNs below the base DN, or None when ``rdns`` is not within the tree."""
        base = self.tree.base_rdns
        if len(rdns) < len(base) or rdns_key(rdns[len(rdns) - len(base):]) != \
                self.tree.base_key:
            return None
        return rdns[: len(rdns) - len(base)]

    def _guard(self, region: str, caller: Caller) -> None:
        if region in PEOPLE and not caller.reads_people:
            raise InsufficientAccess(
                "which app is asking is unknown: connect from the app, or bind as it"
            )
        if region in MAIL and not caller.mail_reader:
            raise InsufficientAccess("mail lookups are for mail servers and email apps")

    def find(self, dn: str | bytes, caller: Caller) -> Entry:
        rdns = parse_dn(dn)
        if not rdns:
            return self._root_dse
        rel = self._relative(rdns)
        if rel is None:
            raise NoSuchObject("no such entry")
        if not rel:
            return self._base
        region = _single(rel[-1], "ou")
        if region not in OUS:
            raise NoSuchObject("no such entry", matched_dn=self.tree.base_dn)
        self._guard(region, caller)
        if len(rel) == 1:
            return self._ous[region]
        entry = self._child(region, rel[:-1], caller)
        if entry is None:
            raise NoSuchObject("no such entry", matched_dn=self.tree.ou_dn[region])
        return entry

    def _child(self, region: str, rel: tuple[RDN, ...], caller: Caller) -> Entry | None:
        index = self.index
        leaf = rel[0]
        if region == "users" and len(rel) == 1:
            record = index.user_by_key.get(rdns_key((*rel, *self._users_rdns)))
            if record is not None and index.visible(record, caller.app):
                return record.entry
            return None
        if region == "groups" and len(rel) == 1:
            name = _single(leaf, "cn")
            return self._group(name, caller) if name else None
        if region == "mailboxes":
            return self._mailbox(rel)
        address = _single(leaf, "cn")
        if len(rel) != 1 or not address:
            return None
        if region == "mailaliases":
            box = index.mailbox_of_kind(address, "alias")
            return index.entries.alias(box) if box else None
        box = index.mailbox_of_kind(address, "list")
        return index.entries.mailing_list(box) if box else None

    def _mailbox(self, rel: tuple[RDN, ...]) -> Entry | None:
        index = self.index
        if len(rel) == 1:
            domain = _single(rel[0], "domain")
            if domain and domain in index.mail_domains:
                return index.entries.mail_domain(domain)
            address = _single(rel[0], "cn")
            box = index.mailbox_of_kind(address, "mailbox") if address else None
            # Cloudron's flat form: the entry answers under the DN the client asked for.
            if box is not None:
                flat = join("cn", box.address, self.tree.ou_dn["mailboxes"])
                return index.entries.mailbox(box, dn=flat)
            return None
        if len(rel) == 2:
            address, domain = _single(rel[0], "cn"), _single(rel[1], "domain")
            box = index.mailbox_of_kind(address, "mailbox") if address else None
            if box is not None and box.domain == domain:
                return index.entries.mailbox(box)
        return None

    # -- groups as one caller sees them ----------------------------------------------------

    def _visible_ids(self, caller: Caller, *, admins: bool = False) -> list[str]:
        index = self.index
        out = []
        for key in index.ordered_user_keys():
            record = index.user_by_key[key]
            if admins and not record.user.is_admin:
                continue
            if index.visible(record, caller.app):
                out.append(record.user.id)
        return out

    def _group(self, name: str, caller: Caller) -> Entry | None:
        index = self.index
        if self._group_generation != index.generation:
            self._group_cache.clear()
            self._group_generation = index.generation
        cache_key = (caller.cache_key, name)
        cached = self._group_cache.get(cache_key)
        if cached is not None:
            return cached
        if name in SYNTHETIC_GIDS:
            ids = self._visible_ids(caller, admins=name == "admins")
            entry = index.entries.group(name, SYNTHETIC_GIDS[name], ids)
        else:
            group = index.group_by_name.get(name)
            if group is None:
                return None
            members = index.members.get(group.id, set())
            ids = [
                uid for uid in self._visible_ids(caller) if uid in members
            ]
            entry = index.entries.real_group(group, ids)
        self._group_cache[cache_key] = entry
        return entry

    def _groups(self, caller: Caller) -> Iterator[Entry]:
        for name in (*SYNTHETIC_GIDS, *sorted(self.index.group_by_name)):
            entry = self._group(name, caller)
            if entry is not None:
                yield entry

    # -- searching -------------------------------------------------------------------------

    def search(self, base: str | bytes, scope: int, flt: CompiledFilter,
               caller: Caller) -> Iterator[Entry]:
        """Entries in scope that the filter accepts, in a stable order.

        Raises NoSuchObject / InsufficientAccess for the base before anything is sent.
        """
        entry = self.find(base, caller)
        if entry is self._root_dse:
            if scope != SCOPE_BASE:
                raise NoSuchObject("only the root DSE is above the naming context")
            return iter([entry] if flt.accepts(entry) else [])
        return self._walk(entry, scope, flt, caller)

    def _walk(self, entry: Entry, scope: int, flt: CompiledFilter,
              caller: Caller) -> Iterator[Entry]:
        if scope != SCOPE_ONE and flt.accepts(entry):
            yield entry
        if scope == SCOPE_BASE:
            return
        deeper = SCOPE_SUB if scope == SCOPE_SUB else SCOPE_BASE
        for child in self._children(entry, flt, caller):
            if deeper == SCOPE_BASE:
                if flt.accepts(child):
                    yield child
            else:
                yield from self._walk(child, SCOPE_SUB, flt, caller)

    def _children(self, entry: Entry, flt: CompiledFilter, caller: Caller) -> Iterator[Entry]:
        index, tree = self.index, self.tree
        if entry is self._base:
            for ou in OUS:
                readable = caller.reads_people if ou in PEOPLE else caller.mail_reader
                if readable:
                    yield self._ous[ou]
        elif entry.key == tree.ou_key["users"]:
            yield from self._users(flt, caller)
        elif entry.key == tree.ou_key["groups"]:
            yield from self._groups(caller)
        elif entry.key == tree.ou_key["mailboxes"]:
            for domain in sorted(index.mail_domains):
                yield index.entries.mail_domain(domain)
        elif entry.key == tree.ou_key["mailaliases"]:
            for box in sorted(index.mailboxes.values(), key=lambda b: b.address):
                if box.kind == "alias" and box.active and box.domain in index.mail_domains:
                    yield index.entries.alias(box)
        elif entry.key == tree.ou_key["mailinglists"]:
            for box in sorted(index.mailboxes.values(), key=lambda b: b.address):
                if box.kind == "list" and box.active and box.domain in index.mail_domains:
                    yield index.entries.mailing_list(box)
        elif entry.key.endswith("," + tree.ou_key["mailboxes"]):
            domain_attr = entry.attributes.get("domain")
            if domain_attr is not None:
                for box in index.mailboxes_of(domain_attr.values[0]):
                    yield index.entries.mailbox(box)

    def _users(self, flt: CompiledFilter, caller: Caller) -> Iterator[Entry]:
        index = self.index
        candidates = flt.plan(index.values)
        keys = index.ordered_user_keys()
        if candidates is not None and len(candidates) < len(keys):
            ordered = sorted(candidates, key=self._rank)
        else:
            ordered = keys
        app = caller.app
        for key in ordered:
            record = index.user_by_key.get(key)
            if record is not None and index.visible(record, app):
                yield record.entry

    def _rank(self, key: str) -> tuple[str, str]:
        record = self.index.user_by_key.get(key)
        if record is None:
            return ("", key)
        return (record.user.username or "", record.user.id)

    # -- compare ---------------------------------------------------------------------------

    def compare(self, dn: str | bytes, attribute: str, value: str, caller: Caller) -> bool:
        entry = self.find(dn, caller)
        found = entry.get(attribute)
        if found is None:
            return False
        wanted = normalize(syntax_of(attribute), value)
        return wanted is not None and wanted in found.norms


def _single(rdn: RDN, attribute_type: str) -> str | None:
    """The value of a one-part RDN of ``attribute_type``, normalised; else None."""
    if len(rdn) != 1 or rdn[0][0] != attribute_type:
        return None
    return normalize_value(rdn[0][1])
