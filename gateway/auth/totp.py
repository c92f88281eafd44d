"""TOTP (RFC 6238): SHA-1, 6 digits, 30 s, a configurable window, and no replay.

A code is accepted only if its time step is newer than the last step the user used,
claimed in the store with one conditional write, so the same code cannot log in twice,
whichever door or node sees it second (RFC 6238 section 5.2).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

import pyotp

from gateway.store.users import Users

STEP_SECONDS = 30
DIGITS = 6


def new_secret() -> str:
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def looks_like_code(text: str) -> bool:
    return len(text) == DIGITS and text.isdigit()


class TotpVerifier:
    def __init__(
        self, users: Users, *, window: int = 1, clock: Callable[[], float] = time.time
    ) -> None:
        self._users = users
        self._window = window
        self._clock = clock

    def matching_step(self, secret: str, code: str) -> int | None:
        """The time step ``code`` belongs to within the window, or None."""
        if not looks_like_code(code):
            return None
        totp = pyotp.TOTP(secret)
        now_step = int(self._clock()) // STEP_SECONDS
        found = None
        # Compare every candidate, so the time taken says nothing about which one matched.
        for offset in range(-self._window, self._window + 1):
            step = now_step + offset
            if hmac.compare_digest(totp.generate_otp(step), code):
                found = step
        return found

    async def verify(self, user_id: str, secret: str, code: str) -> bool:
        step = self.matching_step(secret, code)
        if step is None:
            return False
        return await self._users.claim_totp_step(user_id, step)
