"""What the policy answers while its storage is unreachable, and the two log lines it writes.

An outage is logged once when it starts (with the answer the config chose) and once when
the storage answers again (with how long it lasted and how many attempts were answered
without it), never once per attempt: a Redis restart under load must not flood the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ratelimit.decisions import ALLOW, Decision, Delay
from ratelimit.errors import StorageUnavailable

log = logging.getLogger("ratelimit")


class StorageOutage:
    def __init__(
        self,
        *,
        storage: str,
        answer: str,
        retry_after: float,
        clock: Callable[[], float],
    ) -> None:
        self._storage = storage
        self._answer = answer
        self._retry_after = retry_after
        self._clock = clock
        self._since: float | None = None
        self._answered = 0

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, error: StorageUnavailable) -> None:
        self._answered += 1
        if self._since is not None:
            return
        self._since = self._clock()
        effect = (
            f"refusing every login for {self._retry_after:g}s at a time (on_storage_error=deny)"
            if self._answer == "deny"
            else "allowing logins without lockout checks (on_storage_error=allow)"
        )
        log.error("rate-limit storage %s unreachable: %s; %s", self._storage, error, effect)

    def recovered(self) -> None:
        if self._since is None:
            return
        lasted = self._clock() - self._since
        log.warning(
            "rate-limit storage %s is back after %.1fs; %d policy calls were answered "
            "without it",
            self._storage, lasted, self._answered,
        )
        self._since = None
        self._answered = 0

    def decision(self) -> Decision:
        if self._answer == "allow":
            return ALLOW
        return Delay(retry_after=self._retry_after, scope="storage")
