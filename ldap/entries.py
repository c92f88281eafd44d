"""What each record of the store looks like in the tree (SPEC.md "LDAP", Cloudron A.3 to A.7).

Attribute names are spelled as Cloudron sent them (apps read ``displayname``, ``givenName``,
``memberof`` with whatever case they were written against; matching is case-insensitive
both ways). Values are derived, never stored: no password goes into the tree.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable

from gateway.store.models import Group, Mailbox, User
from ldap.dn import dn_key, join, parse_dn
from ldap.entry import Entry

USER_CLASSES = ("user", "inetorgperson", "person")
GROUP_CLASSES = ("group", "groupofnames")
SYNTHETIC_GROUPS = ("users", "admins")
# gidnumber of the synthetic groups; real groups get a stable number from their id, above
# anything a system group uses.
SYNTHETIC_GIDS = {"users": 500, "admins": 501}
OUS = ("users", "groups", "mailboxes", "mailaliases", "mailinglists")

PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"
MANAGE_DSA_IT_OID = "2.16.840.1.113730.3.4.2"
STARTTLS_OID = "1.3.6.1.4.1.1466.20037"
WHOAMI_OID = "1.3.6.1.4.1.4203.1.11.3"
PASSWORD_MODIFY_OID = "1.3.6.1.4.1.4203.1.11.1"
ALL_OPERATIONAL_FEATURE = "1.3.6.1.4.1.4203.1.5.1"


def generalized_time(at: float) -> str:
    return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(at))


def name_parts(display: str) -> tuple[str, str]:
    """givenName and sn: first and last token of the display name (sn empty for one word)."""
    tokens = display.split()
    if not tokens:
        return "", ""
    return tokens[0], tokens[-1] if len(tokens) >= 2 else ""


def gid_number(group_id: str) -> int:
    return 10_000 + zlib.crc32(group_id.encode()) % 2_000_000_000


class Tree:
    """DNs of the fixed part of the tree under one base DN."""

    def __init__(self, base_dn: str) -> None:
        self.base_dn = base_dn
        self.base_rdns = parse_dn(base_dn)
        self.base_key = dn_key(base_dn)
        self.ou_dn = {ou: join("ou", ou, base_dn) for ou in (*OUS, "apps", "sendmail",
                                                            "recvmail", "system")}
        self.ou_key = {ou: dn_key(dn) for ou, dn in self.ou_dn.items()}

    def user_dn(self, user_id: str) -> str:
        return join("cn", user_id, self.ou_dn["users"])

    def group_dn(self, name: str) -> str:
        return join("cn", name, self.ou_dn["groups"])

    def mail_domain_dn(self, domain: str) -> str:
        return join("domain", domain, self.ou_dn["mailboxes"])

    def mailbox_dn(self, address: str, domain: str) -> str:
        return join("cn", address, self.mail_domain_dn(domain))


class EntryFactory:
    def __init__(self, tree: Tree) -> None:
        self.tree = tree

    def user(self, user: User, group_names: Iterable[str]) -> Entry:
        t = self.tree
        display = user.display_name or user.username or ""
        given, sn = name_parts(display)
        groups = [t.group_dn("users")]
        if user.is_admin:
            groups.append(t.group_dn("admins"))
        groups.extend(t.group_dn(name) for name in sorted(group_names))
        dn = t.user_dn(user.id)
        return Entry(
            dn,
            dn_key(dn),
            [
                ("objectclass", USER_CLASSES),
                ("objectcategory", ("person",)),
                ("uid", (user.id,)),
                ("entryuuid", (user.id,)),
                ("cn", (user.id,)),
                ("mail", (user.email,)),
                ("mailAlternateAddress", (user.fallback_email,)),
                ("displayname", (display,)),
                ("givenName", (given,)),
                ("sn", (sn,)),
                ("username", (user.username or "",)),
                ("samaccountname", (user.username or "",)),
                ("memberof", groups),
            ],
            rdn=(("cn", user.id),),
            operational=[
                ("entryDN", (dn,)),
                ("structuralObjectClass", ("inetOrgPerson",)),
                ("hasSubordinates", ("FALSE",)),
                ("createTimestamp", (generalized_time(user.created_at),)),
                ("modifyTimestamp", (generalized_time(user.modified_at),)),
            ],
        )

    def group(self, name: str, gid: int, member_ids: list[str]) -> Entry:
        """A group as one caller sees it: ``member_ids`` are already the visible ones."""
        t = self.tree
        dn = t.group_dn(name)
        member_dns = [t.user_dn(uid) for uid in member_ids]
        return Entry(
            dn,
            dn_key(dn),
            [
                ("objectclass", GROUP_CLASSES),
                ("cn", (name,)),
                ("gidnumber", (str(gid),)),
                ("memberuid", member_ids),
                ("member", member_dns),
                ("uniquemember", member_dns),
            ],
            rdn=(("cn", name),),
            operational=[
                ("entryDN", (dn,)),
                ("structuralObjectClass", ("groupOfNames",)),
                ("hasSubordinates", ("FALSE",)),
            ],
        )

    def real_group(self, group: Group, member_ids: list[str]) -> Entry:
        return self.group(group.name, gid_number(group.id), member_ids)

    def container(self, dn: str, attributes: list[tuple[str, tuple[str, ...]]],
                  structural: str) -> Entry:
        return Entry(
            dn,
            dn_key(dn),
            attributes,
            rdn=parse_dn(dn)[0] if dn else (),
            operational=[
                ("entryDN", (dn,)),
                ("structuralObjectClass", (structural,)),
                ("hasSubordinates", ("TRUE",)),
            ],
        )

    def base(self) -> Entry:
        first = self.tree.base_rdns[0] if self.tree.base_rdns else ()
        attributes: list[tuple[str, tuple[str, ...]]] = [("objectclass", ("top", "domain"))]
        attributes.extend((t, (v,)) for t, v in first)
        return self.container(self.tree.base_dn, attributes, "domain")

    def ou(self, name: str) -> Entry:
        return self.container(
            self.tree.ou_dn[name],
            [("objectclass", ("top", "organizationalUnit")), ("ou", (name,))],
            "organizationalUnit",
        )

    def mail_domain(self, domain: str) -> Entry:
        return self.container(
            self.tree.mail_domain_dn(domain),
            [("objectclass", ("top", "mailDomain")), ("domain", (domain,))],
            "mailDomain",
        )

    def mailbox(self, box: Mailbox, dn: str | None = None) -> Entry:
        """A mailbox; ``dn`` overrides its place for Cloudron's flat ``cn=<addr>,ou=mailboxes``."""
        address = box.address
        dn = dn or self.tree.mailbox_dn(address, box.domain)
        return Entry(
            dn,
            dn_key(dn),
            [
                ("objectclass", ("mailbox",)),
                ("objectcategory", ("mailbox",)),
                ("cn", (address,)),
                ("uid", (address,)),
                ("mail", (address,)),
            ],
            rdn=(("cn", address),),
            operational=[("entryDN", (dn,)), ("hasSubordinates", ("FALSE",))],
        )

    def alias(self, box: Mailbox) -> Entry:
        dn = join("cn", box.address, self.tree.ou_dn["mailaliases"])
        target = box.alias_target or ""
        if target and "@" not in target:
            target = f"{target}@{box.domain}"
        return Entry(
            dn,
            dn_key(dn),
            [
                ("objectclass", ("nisMailAlias",)),
                ("objectcategory", ("nisMailAlias",)),
                ("cn", (box.address,)),
                ("rfc822MailMember", (target,)),
            ],
            rdn=(("cn", box.address),),
            operational=[("entryDN", (dn,)), ("hasSubordinates", ("FALSE",))],
        )

    def mailing_list(self, box: Mailbox) -> Entry:
        dn = join("cn", box.address, self.tree.ou_dn["mailinglists"])
        members = [m if "@" in m else f"{m}@{box.domain}" for m in box.members]
        return Entry(
            dn,
            dn_key(dn),
            [
                ("objectclass", ("mailGroup",)),
                ("objectcategory", ("mailGroup",)),
                ("cn", (box.address,)),
                ("mail", (box.address,)),
                ("mgrpRFC822MailMember", members),
            ],
            rdn=(("cn", box.address),),
            operational=[("entryDN", (dn,)), ("hasSubordinates", ("FALSE",))],
        )

    def root_dse(self, *, starttls: bool) -> Entry:
        extensions = [WHOAMI_OID]
        if starttls:
            extensions.append(STARTTLS_OID)
        return Entry(
            "",
            "",
            [
                ("objectClass", ("top",)),
                ("namingContexts", (self.tree.base_dn,)),
                ("supportedLDAPVersion", ("3",)),
                ("supportedControl", (PAGED_RESULTS_OID, MANAGE_DSA_IT_OID)),
                ("supportedExtension", tuple(extensions)),
                ("supportedFeatures", (ALL_OPERATIONAL_FEATURE,)),
                ("supportedSASLMechanisms", ()),
                ("vendorName", ("gateway suite",)),
            ],
        )
