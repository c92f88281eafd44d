"""Names and addresses the store accepts, as Cloudron validates them (E.2)."""

from __future__ import annotations

import re

from gateway.store.errors import InvalidValue

_NAME = re.compile(r"^[a-z0-9.-]{1,199}$")
# Names that mean something to the platform or to mail, so nobody may own them.
RESERVED_USERNAMES = frozenset(
    {"admin", "no-reply", "postmaster", "mailer-daemon", "admins", "users", "root"}
)
RESERVED_GROUP_NAMES = frozenset({"users", "admins"})
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?"
_EMAIL = re.compile(rf"^[^@\s]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$")
MIN_PASSWORD = 8
MAX_PASSWORD = 256


def username(value: str) -> str:
    name = value.strip().lower()
    if not _NAME.match(name):
        raise InvalidValue("username", "1 to 199 of a-z, 0-9, '.' and '-'")
    if name in RESERVED_USERNAMES:
        raise InvalidValue("username", f"{name!r} is reserved")
    if ".app" in name:
        raise InvalidValue("username", "must not contain '.app' (app mailboxes use it)")
    if name.startswith("uid-"):
        # A login starting with uid- is looked up as a user id (LDAP binds, E.2).
        raise InvalidValue("username", "must not start with 'uid-' (user ids do)")
    return name


def group_name(value: str) -> str:
    name = value.strip().lower()
    if not _NAME.match(name):
        raise InvalidValue("group", "1 to 199 of a-z, 0-9, '.' and '-'")
    if name in RESERVED_GROUP_NAMES:
        raise InvalidValue("group", f"{name!r} is reserved")
    if name.startswith("gid-"):
        # Groups resolve by id or name; a name shaped like an id would shadow one.
        raise InvalidValue("group", "must not start with 'gid-' (group ids do)")
    return name


def email(value: str, field: str = "email") -> str:
    address = value.strip().lower()
    if not _EMAIL.match(address) or len(address) > 254:
        raise InvalidValue(field, f"{value!r} is not an email address")
    return address


def password(value: str) -> str:
    if not MIN_PASSWORD <= len(value) <= MAX_PASSWORD:
        raise InvalidValue("password", f"must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return value


def domain(value: str) -> str:
    name = value.strip().lower().rstrip(".")
    if not _EMAIL.match(f"x@{name}"):
        raise InvalidValue("domain", f"{value!r} is not a domain name")
    return name
