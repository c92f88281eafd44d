"""Change notifications: how in-memory indexes and caches learn that the store changed.

A write names what it touched as ``Change(kind, key)``. Subscribers in this process hear it
at once, after commit; other processes hear it through the backend (SQLite: the change_log
table they poll; PostgreSQL: NOTIFY). ``Change("reset", "*")`` means "anything may have
changed" (a listener reconnected, a log was pruned): drop every cached thing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

ChangeKind = Literal[
    "user", "group", "app", "app_password", "mail_domain", "mailbox", "session", "reset"
]


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    key: str

    def encode(self) -> str:
        return f"{self.kind}:{self.key}"

    @classmethod
    def decode(cls, text: str) -> Change:
        kind, _, key = text.partition(":")
        return cls(kind, key)  # type: ignore[arg-type]


RESET = Change("reset", "*")
Subscriber = Callable[[Change], None]


class ChangeHub:
    """Fans changes out to subscribers. A failing subscriber is logged, never fatal."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def publish(self, changes: list[Change]) -> None:
        for change in changes:
            for callback in list(self._subscribers):
                try:
                    callback(change)
                except Exception:
                    log.exception("change subscriber failed on %s", change.encode())
