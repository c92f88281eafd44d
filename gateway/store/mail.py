"""Mail domains, and the mailboxes, aliases and lists under them."""

from __future__ import annotations

import json
import time
from typing import Any, get_args

from gateway.store import validation
from gateway.store.changes import Change
from gateway.store.database import Database
from gateway.store.errors import Conflict, InvalidValue, NotFound
from gateway.store.models import Mailbox, MailboxKind, MailDomain, OwnerType

_DOMAIN_COLUMNS = (
    "domain, receives, masquerade, dkim_selector, dkim_private_key, relay_json, "
    "catch_all_json, created_at"
)
_MAILBOX_COLUMNS = (
    "name, domain, kind, owner_id, owner_type, alias_target, members_json, active, "
    "quota_bytes, created_at"
)
_DOMAIN_UPDATABLE = {"receives", "masquerade", "dkim_selector", "dkim_private_key", "relay",
                     "catch_all"}


class Mail:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- domains ---------------------------------------------------------------------------

    async def add_domain(self, domain: str, *, receives: bool = False) -> MailDomain:
        name = validation.domain(domain)
        async with self._db.transaction() as tx:
            if await tx.fetchrow("SELECT 1 FROM mail_domains WHERE domain = $1", name):
                raise Conflict(f"mail domain {name!r} exists")
            await tx.execute(
                "INSERT INTO mail_domains (domain, receives, created_at) VALUES ($1, $2, $3)",
                name, receives, time.time(),
            )
            tx.changed(Change("mail_domain", name))
        return await self.domain(name)

    async def domain(self, domain: str) -> MailDomain:
        row = await self._db.fetchrow(
            f"SELECT {_DOMAIN_COLUMNS} FROM mail_domains WHERE domain = $1", domain.lower()
        )
        if row is None:
            raise NotFound("mail domain", domain)
        return MailDomain.from_row(row)

    async def domains(self) -> list[MailDomain]:
        rows = await self._db.fetch(f"SELECT {_DOMAIN_COLUMNS} FROM mail_domains ORDER BY domain")
        return [MailDomain.from_row(r) for r in rows]

    async def update_domain(self, domain: str, **fields: Any) -> MailDomain:
        unknown = set(fields) - _DOMAIN_UPDATABLE
        if unknown:
            raise InvalidValue(", ".join(sorted(unknown)), "cannot be changed this way")
        columns: dict[str, Any] = {}
        for key, value in fields.items():
            if key == "relay":
                columns["relay_json"] = json.dumps(value)
            elif key == "catch_all":
                columns["catch_all_json"] = json.dumps(list(value))
            else:
                columns[key] = value
        if not columns:
            return await self.domain(domain)
        names = sorted(columns)
        assignments = ", ".join(f"{n} = ${i}" for i, n in enumerate(names, start=2))
        async with self._db.transaction() as tx:
            if not await tx.execute(
                f"UPDATE mail_domains SET {assignments} WHERE domain = $1",
                domain.lower(), *(columns[n] for n in names),
            ):
                raise NotFound("mail domain", domain)
            tx.changed(Change("mail_domain", domain.lower()))
        return await self.domain(domain)

    async def remove_domain(self, domain: str) -> None:
        name = domain.lower()
        async with self._db.transaction() as tx:
            addresses = await tx.fetch("SELECT name FROM mailboxes WHERE domain = $1", name)
            if not await tx.execute("DELETE FROM mail_domains WHERE domain = $1", name):
                raise NotFound("mail domain", domain)
            tx.changed(Change("mail_domain", name))
            # Its mailboxes, aliases and lists went with it (ON DELETE CASCADE).
            for row in addresses:
                tx.changed(Change("mailbox", f"{row['name']}@{name}"))

    # -- mailboxes, aliases, lists ---------------------------------------------------------

    async def add_mailbox(
        self,
        name: str,
        domain: str,
        *,
        kind: MailboxKind = "mailbox",
        owner_id: str | None = None,
        owner_type: OwnerType = "user",
        alias_target: str | None = None,
        members: tuple[str, ...] = (),
        quota_bytes: int = 0,
    ) -> Mailbox:
        local = name.strip().lower()
        if not local or "@" in local:
            raise InvalidValue("name", "the part before '@'")
        if kind not in get_args(MailboxKind):
            raise InvalidValue("kind", f"one of {', '.join(get_args(MailboxKind))}")
        if owner_type not in get_args(OwnerType):
            raise InvalidValue("owner_type", f"one of {', '.join(get_args(OwnerType))}")
        if kind == "alias" and not alias_target:
            raise InvalidValue("alias_target", "an alias needs the mailbox it points to")
        if kind == "list" and not members:
            raise InvalidValue("members", "a list needs at least one member")
        async with self._db.transaction() as tx:
            if not await tx.fetchrow(
                "SELECT 1 FROM mail_domains WHERE domain = $1", domain.lower()
            ):
                raise NotFound("mail domain", domain)
            if await tx.fetchrow(
                "SELECT 1 FROM mailboxes WHERE name = $1 AND domain = $2", local, domain.lower()
            ):
                raise Conflict(f"{local}@{domain} exists")
            await tx.execute(
                f"INSERT INTO mailboxes ({_MAILBOX_COLUMNS}) VALUES "
                "($1, $2, $3, $4, $5, $6, $7, TRUE, $8, $9)",
                local, domain.lower(), kind, owner_id, owner_type,
                alias_target.lower() if alias_target else None,
                json.dumps([m.lower() for m in members]), quota_bytes, time.time(),
            )
            tx.changed(Change("mailbox", f"{local}@{domain.lower()}"))
        return await self.mailbox(f"{local}@{domain}")

    async def mailbox(self, address: str) -> Mailbox:
        local, _, domain = address.lower().rpartition("@")
        row = await self._db.fetchrow(
            f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE name = $1 AND domain = $2",
            local, domain,
        )
        if row is None:
            raise NotFound("mailbox", address)
        return Mailbox.from_row(row)

    async def mailboxes(self, domain: str | None = None) -> list[Mailbox]:
        if domain is None:
            rows = await self._db.fetch(
                f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes ORDER BY domain, name"
            )
        else:
            rows = await self._db.fetch(
                f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE domain = $1 ORDER BY name",
                domain.lower(),
            )
        return [Mailbox.from_row(r) for r in rows]

    async def owned_by(self, owner_id: str) -> list[Mailbox]:
        rows = await self._db.fetch(
            f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE owner_id = $1 ORDER BY domain, name",
            owner_id,
        )
        return [Mailbox.from_row(r) for r in rows]

    async def remove_mailbox(self, address: str) -> None:
        local, _, domain = address.lower().rpartition("@")
        async with self._db.transaction() as tx:
            if not await tx.execute(
                "DELETE FROM mailboxes WHERE name = $1 AND domain = $2", local, domain
            ):
                raise NotFound("mailbox", address)
            tx.changed(Change("mailbox", f"{local}@{domain}"))
