"""The lockout policy's thresholds, with the reasons for their defaults.

Plain frozen dataclasses (after Authelia's ``schema.Regulation``): the gateway maps its
``[ratelimit]`` section onto them, tests build them directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

StorageErrorAnswer = Literal["deny", "allow"]


@dataclass(frozen=True)
class ScopeLimits:
    """How many failures one subject (a source or an account) may have in a moving window.

    At ``delay_after`` failures the subject must wait (``LockoutConfig.base_delay``, doubling
    with each further failure); at ``ban_after`` it is banned for ``LockoutConfig.ban_time``.
    """

    delay_after: int
    ban_after: int
    window: float = 300.0

    def __post_init__(self) -> None:
        if not 1 <= self.delay_after <= self.ban_after:
            raise ValueError(
                f"delay_after ({self.delay_after}) must be from 1 to ban_after ({self.ban_after})"
            )
        if self.window < 1:
            raise ValueError("window must be at least one second")


@dataclass(frozen=True)
class LockoutConfig:
    # memory:// keeps counters and bans in this process; redis://HOST:PORT/DB shares them
    # between gateway nodes. Each storage call gives up after storage_timeout seconds.
    storage_uri: str = "memory://"
    storage_password: str | None = field(default=None, repr=False)
    storage_timeout: float = 1.0
    # A source (an IPv4 address, an IPv6 /64) may guess more than one account: shared NATs
    # and one user with several accounts. 10 in 5 minutes is the documented default.
    source: ScopeLimits = field(default_factory=lambda: ScopeLimits(10, 20))
    # An account is guessed from many sources by a distributed attacker: fewer, and
    # counted per *distinct* wrong secret, so a client retrying a stale password counts once.
    account: ScopeLimits = field(default_factory=lambda: ScopeLimits(5, 10))
    # Delays double from base_delay up to max_delay (OpenLDAP's pwdMinDelay/pwdMaxDelay,
    # Kanidm's tiers) before the ban, so a typo-prone owner waits seconds, not 15 minutes.
    base_delay: float = 1.0
    max_delay: float = 60.0
    ban_time: float = 900.0
    # A source or device that logged in to an account keeps getting in for this long, even
    # while that account is banned for everybody else (Mailu's exemption, a week here).
    exempt_time: float = 7 * 24 * 3600.0
    # Addresses are grouped: one IPv6 host usually owns a whole /64.
    ipv4_prefix: int = 32
    ipv6_prefix: int = 64
    # "deny": an unreachable storage refuses every attempt for storage_retry_after seconds
    # (Authelia refuses when its regulation store fails); "allow" lets them through.
    on_storage_error: StorageErrorAnswer = "deny"
    storage_retry_after: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.base_delay <= self.max_delay:
            raise ValueError("need 0 < base_delay <= max_delay")
        if self.ban_time < 1 or self.exempt_time < 1:
            raise ValueError("ban_time and exempt_time must be at least one second")
        if not 0 <= self.ipv4_prefix <= 32 or not 0 <= self.ipv6_prefix <= 128:
            raise ValueError("ipv4_prefix is 0..32, ipv6_prefix 0..128")

    def delay_for(self, failures: int, limits: ScopeLimits) -> float:
        """Seconds to wait after the ``failures``-th failure: 0 below the threshold."""
        if failures < limits.delay_after:
            return 0.0
        # Capped exponent: 2**60 seconds would overflow nothing but is still silly.
        steps = min(failures - limits.delay_after, 60)
        return min(self.base_delay * 2.0**steps, self.max_delay)
