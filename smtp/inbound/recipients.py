"""Which mailboxes an inbound recipient address ends in: the in-memory recipient index.

Lookup order for ``local+tag@domain`` on a domain that receives mail: the exact address,
then the address without ``+tag`` (RFC 5233 subaddressing, also for aliases and lists),
then the domain's catch-all addresses. An alias follows its target; a list expands to its
members (recursively, at most ``MAX_DEPTH`` levels, loops cut); members at other domains
come back as ``external``. Inactive rows do not receive.

The index holds every domain and mailbox row in memory and is rebuilt on the next lookup
after the store announces a ``mail_domain``, ``mailbox`` or ``reset`` change, so an
address added or removed by the CLI takes effect on the next RCPT.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from gateway.store import Change, Store
from gateway.store.models import Mailbox, MailDomain
from smtp import addresses
from smtp.inbound.errors import BadAddress, RelayDenied, UnknownRecipient

MAX_DEPTH = 8


@dataclass(frozen=True)
class Resolved:
    """Where one recipient's copy goes."""

    mailboxes: tuple[str, ...]  # INBOX addresses (kind "mailbox") here, deduplicated
    external: tuple[str, ...] = ()  # list members elsewhere
    quotas: dict[str, int] = field(default_factory=dict, compare=False)


class RecipientIndex:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._domains: dict[str, MailDomain] = {}
        self._boxes: dict[str, Mailbox] = {}
        self._stale = True
        self._generation = 0  # bumped by every change heard
        self._lock = asyncio.Lock()
        self._unsubscribe = store.changes.subscribe(self._on_change)

    def _on_change(self, change: Change) -> None:
        if change.kind in ("mail_domain", "mailbox", "reset"):
            self._stale = True
            self._generation += 1

    def close(self) -> None:
        self._unsubscribe()

    async def _fresh(self) -> None:
        if not self._stale:
            return
        async with self._lock:
            if not self._stale:
                return
            generation = self._generation
            domains = await self._store.mail.domains()
            boxes = await self._store.mail.mailboxes()
            self._domains = {d.domain: d for d in domains}
            self._boxes = {b.address: b for b in boxes}
            # A change heard during the read leaves it stale: the next lookup reads again.
            self._stale = generation != self._generation

    async def receiving_domains(self) -> list[str]:
        await self._fresh()
        return sorted(d for d, v in self._domains.items() if v.receives)

    async def resolve(self, address: str) -> Resolved:
        """The mailboxes ``address`` delivers to; raises BadAddress, RelayDenied or
        UnknownRecipient."""
        await self._fresh()
        split = addresses.split(address)
        if split is None:
            raise BadAddress(f"<{address}> is not a deliverable address")
        local, domain = split
        hosted = self._domains.get(domain)
        if hosted is None or not hosted.receives:
            raise RelayDenied(f"<{address}>: relay access denied")
        boxes: dict[str, int] = {}
        external: dict[str, None] = {}
        found = self._expand(f"{local}@{domain}", boxes, external, 0, set())
        if not found and addresses.SUBADDRESS_SEPARATOR in local:
            base = f"{addresses.without_tag(local)}@{domain}"
            found = self._expand(base, boxes, external, 0, set())
        if not found:
            for target in hosted.catch_all:
                self._expand(target.lower(), boxes, external, 0, set())
            found = bool(boxes or external)
        if not found:
            raise UnknownRecipient(f"<{address}>: no such mailbox here")
        return Resolved(tuple(boxes), tuple(external), boxes)

    def _expand(
        self, address: str, boxes: dict[str, int], external: dict[str, None], depth: int,
        seen: set[str],
    ) -> bool:
        """Add where ``address`` delivers; False when nothing here knows it."""
        if address in seen or depth > MAX_DEPTH:
            return True  # a loop or a very deep chain: what was found so far stands
        seen.add(address)
        row = self._boxes.get(address)
        if row is None or not row.active:
            domain = addresses.domain_of(address)
            if domain not in self._domains:
                external[address] = None
                return True
            return False
        if row.kind == "mailbox":
            boxes[row.address] = row.quota_bytes
            return True
        if row.kind == "alias":
            target = (row.alias_target or "").lower()
            return bool(target) and self._expand(target, boxes, external, depth + 1, seen)
        delivered = False
        for member in row.members:
            delivered = self._expand(member.lower(), boxes, external, depth + 1, seen) or delivered
        return delivered
