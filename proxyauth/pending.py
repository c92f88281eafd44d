"""The login form's second step: a right password waiting for its TOTP code.

Decision (documented in docs/forward-auth.md): the first step is carried server-side, never
in the page or a cookie. The portal's second check (``PasswordTOTP``) verifies the password
again with the code, so the password is held here, in this process's memory only (never in
the store, Redis, a log or a cookie), for at most ``second_step_timeout`` seconds, under a
random id that only the browser's login cookie knows, and dropped on success, on expiry,
after ``MAX_CODE_ATTEMPTS`` wrong codes, or when that browser starts over. Re-verifying
means a password changed in between fails the second step too.

Several nodes: the code must reach the node that took the password (sticky sessions, as
for any form flow); elsewhere the user is asked to start over, never let in.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import final

MAX_CODE_ATTEMPTS = 5
MAX_PENDING = 10_000


@dataclass
class PendingLogin:
    login: str
    password: str = field(repr=False)
    app_id: str
    target: str
    expires: float
    attempts: int = 0


def _key(flow_id: str) -> str:
    # The cookie value itself is not kept either.
    return hashlib.sha256(flow_id.encode()).hexdigest()


@final
class PendingLogins:
    def __init__(self, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._pending: OrderedDict[str, PendingLogin] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, flow_id: str, *, login: str, password: str, app_id: str, target: str) -> None:
        self._sweep()
        self._pending[_key(flow_id)] = PendingLogin(
            login=login, password=password, app_id=app_id, target=target,
            expires=self._clock() + self._ttl,
        )
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)

    def get(self, flow_id: str, app_id: str) -> PendingLogin | None:
        key = _key(flow_id)
        pending = self._pending.get(key)
        if pending is None:
            return None
        if pending.expires <= self._clock() or pending.app_id != app_id:
            del self._pending[key]
            return None
        return pending

    def failed(self, flow_id: str) -> bool:
        """Count a wrong code; True when the pending login is used up (and dropped)."""
        key = _key(flow_id)
        pending = self._pending.get(key)
        if pending is None:
            return True
        pending.attempts += 1
        if pending.attempts >= MAX_CODE_ATTEMPTS:
            del self._pending[key]
            return True
        return False

    def drop(self, flow_id: str) -> None:
        self._pending.pop(_key(flow_id), None)

    def _sweep(self) -> None:
        now = self._clock()
        # Insertion order is expiry order (one ttl for all): stop at the first live one.
        while self._pending:
            key, first = next(iter(self._pending.items()))
            if first.expires > now:
                break
            del self._pending[key]
