"""The hosted mail domains, read from the store once and kept until the store says otherwise.

Every submission asks about its sender's domain (hosted? masquerading? relay? DKIM key?), so
the answers are cached in memory and dropped on a ``mail_domain`` change (or a reset), which
the store publishes on every node as soon as an operator changes a domain.
"""

from __future__ import annotations

from gateway.store import Change, NotFound, Store
from gateway.store.models import MailDomain


class DomainIndex:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._known: dict[str, MailDomain | None] = {}
        self._unsubscribe = store.changes.subscribe(self._on_change)

    def _on_change(self, change: Change) -> None:
        if change.kind == "mail_domain":
            self._known.pop(change.key.lower(), None)
        elif change.kind == "reset":
            self._known.clear()

    async def get(self, domain: str) -> MailDomain | None:
        name = domain.lower()
        if name in self._known:
            return self._known[name]
        try:
            found: MailDomain | None = await self._store.mail.domain(name)
        except NotFound:
            found = None
        self._known[name] = found
        return found

    def close(self) -> None:
        self._unsubscribe()
