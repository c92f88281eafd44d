"""Which addresses a login may send as, checked on the envelope sender and header From/Sender.

An app may use its own address (its SMTP username) and ``+tag`` forms of it; a user, the
mailboxes they or their groups own and the aliases pointing at those, with ``+tag`` forms
too. A domain with masquerading on accepts any address of that domain from any login
(Cloudron's ``mailFromValidation = false``). Domains not hosted here are always refused:
this relay never sends as somebody else's domain. (Cloudron C.5, C.8; maddy's
``authorize_sender``.)
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.auth import AppIdentity, Identity, UserIdentity
from gateway.store import Store
from gateway.store.models import Mailbox
from smtp import addresses
from smtp.domains import DomainIndex
from smtp.errors import OutboundDisabled


@dataclass(frozen=True)
class SenderRights:
    """What one login may send as; computed once per session, after AUTH."""

    login: str
    addresses: frozenset[str]

    def owns(self, local: str, domain: str) -> bool:
        exact = f"{local}@{domain}"
        return exact in self.addresses or f"{addresses.without_tag(local)}@{domain}" in (
            self.addresses
        )


class SenderPolicy:
    def __init__(self, store: Store, domains: DomainIndex) -> None:
        self._store = store
        self._domains = domains

    async def rights_for(self, identity: Identity) -> SenderRights:
        if isinstance(identity, AppIdentity):
            found = {identity.principal.lower()}
            found.update(m.address for m in await self._store.mail.owned_by(identity.app_id)
                         if m.kind != "list")
            return SenderRights(identity.principal, frozenset(found))
        assert isinstance(identity, UserIdentity)
        owned: list[Mailbox] = []
        for owner in (identity.user_id, *identity.group_ids):
            owned.extend(await self._store.mail.owned_by(owner))
        own = {m.address for m in owned if m.kind == "mailbox" and m.active}
        allowed = set(own) | {m.address for m in owned if m.kind == "alias" and m.active}
        for box in await self._aliases():
            if box.alias_target and box.alias_target.lower() in own:
                allowed.add(box.address)
        return SenderRights(identity.username or identity.email, frozenset(allowed))

    async def _aliases(self) -> list[Mailbox]:
        return [m for m in await self._store.mail.mailboxes() if m.kind == "alias" and m.active]

    async def refusal(self, rights: SenderRights, address: str) -> str | None:
        """None when ``rights`` may send as ``address``; otherwise the reason, for the reply."""
        parts = addresses.split(address)
        if parts is None:
            return f"<{address}> is not a mail address"
        local, domain = parts
        hosted = await self._domains.get(domain)
        if hosted is None:
            return f"domain {domain} is not hosted here; {rights.login} may not send as <{address}>"
        if rights.owns(local, domain) or hosted.masquerade:
            return None
        return f"{rights.login} may not send as <{address}>"

    async def check_outbound(self, address: str) -> None:
        """Refuse a sender whose domain sends no mail at all (relay provider ``noop``)."""
        hosted = await self._domains.get(addresses.domain_of(address))
        if hosted is not None and hosted.relay.get("provider") == "noop":
            raise OutboundDisabled(f"outbound mail is disabled for {hosted.domain}")
