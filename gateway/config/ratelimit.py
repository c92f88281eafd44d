"""The [ratelimit] section: the lockout policy every door asks first, and the caps.

Mapped onto ``ratelimit.LockoutConfig`` by ``lockout()``; the package itself knows nothing
of TOML or of the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

# model.py imports this module before it defines Secret, so the name is resolved through
# the module when the loader reads the type hints (as ldap.py does).
import gateway.config.model as model
from gateway.config.fields import doc

if TYPE_CHECKING:
    from ratelimit import LockoutConfig

DAY = 24 * 3600.0


@dataclass(frozen=True)
class RateLimitConfig:
    enabled: bool = field(
        default=True,
        metadata=doc("Apply the lockout policy (off: every attempt is allowed)."),
    )
    storage: str = field(
        default="memory://",
        metadata=doc(
            "Where counters and bans live. memory:// keeps them in this process (lost on "
            "restart); redis://HOST:PORT/DB shares them between gateway nodes. Bans are "
            "listed and lifted through the admin endpoint either way (gateway bans)."
        ),
    )
    storage_password: model.Secret | None = field(
        default=None,
        metadata=doc("Redis password, kept out of the URL (or storage_password_file)."),
    )
    storage_timeout: float = field(
        default=1.0,
        metadata=doc("Seconds one Redis call may take before it counts as a failure.",
                     min=0.05, max=30.0),
    )
    on_storage_error: Literal["deny", "allow"] = field(
        default="deny",
        metadata=doc(
            "When the storage is unreachable: deny refuses every login with a 'try later' "
            "(safe: no unthrottled guessing while Redis is down); allow lets logins through "
            "without lockout. Either way one line is logged when the outage starts and one "
            "when it ends."
        ),
    )
    storage_retry_after: float = field(
        default=5.0,
        metadata=doc("Retry-after (seconds) of the refusals during a storage outage.",
                     min=1.0, max=300.0),
    )
    source_delay_after: int = field(
        default=10,
        metadata=doc("Failures from one address (IPv6: its /64) in source_window before it "
                     "must wait between attempts.", min=1, max=10_000),
    )
    source_ban_after: int = field(
        default=20,
        metadata=doc("Failures from one address in source_window that ban it for ban_time.",
                     min=1, max=10_000),
    )
    source_window: float = field(
        default=300.0,
        metadata=doc("Moving window (seconds) over which failures from an address count.",
                     min=1.0, max=DAY),
    )
    account_delay_after: int = field(
        default=5,
        metadata=doc("Distinct wrong secrets for one account in account_window before "
                     "attempts on it must wait (the same wrong secret repeated counts once).",
                     min=1, max=10_000),
    )
    account_ban_after: int = field(
        default=10,
        metadata=doc("Distinct wrong secrets for one account in account_window that ban it "
                     "for ban_time (except for addresses and devices that logged in to it).",
                     min=1, max=10_000),
    )
    account_window: float = field(
        default=300.0,
        metadata=doc("Moving window (seconds) over which failures on an account count.",
                     min=1.0, max=DAY),
    )
    base_delay: float = field(
        default=1.0,
        metadata=doc("First wait (seconds) after the delay threshold; doubles with each "
                     "further failure.", min=0.1, max=3600.0),
    )
    max_delay: float = field(
        default=60.0, metadata=doc("Longest wait (seconds) before the ban.", min=0.1, max=DAY)
    )
    ban_time: float = field(
        default=900.0, metadata=doc("How long (seconds) a ban lasts.", min=1.0, max=30 * DAY)
    )
    exempt_time: float = field(
        default=7 * DAY,
        metadata=doc(
            "How long (seconds) an address or device that logged in to an account stays "
            "exempt from that account's delays and bans, so an attacker cannot lock the "
            "owner out.", min=1.0, max=365 * DAY,
        ),
    )
    ipv4_prefix: int = field(
        default=32, metadata=doc("IPv4 addresses are counted per network of this size.",
                                 min=8, max=32)
    )
    ipv6_prefix: int = field(
        default=64,
        metadata=doc("IPv6 addresses are counted per network of this size (a host usually "
                     "owns a whole /64).", min=16, max=128),
    )
    login_rate: str = field(
        default="10/second",
        metadata=doc(
            "Requests per address to the login form's POST, in limits notation; several "
            "separated by ';' (e.g. '10/second;60/minute'). Cloudron: 10/second."
        ),
    )
    ldap_connections_per_app: int = field(
        default=500,
        metadata=doc("Concurrent LDAP connections per app (Cloudron's firewall cap).",
                     min=1, max=100_000),
    )
    mail_connections_per_address: int = field(
        default=50,
        metadata=doc("Concurrent connections per address on the public mail ports "
                     "(Cloudron's firewall cap).", min=1, max=100_000),
    )

    def lockout(self) -> LockoutConfig:
        """This section as the policy's config; ValueError names an inconsistent pair."""
        from ratelimit import LockoutConfig, ScopeLimits

        scopes = {}
        for scope in ("source", "account"):
            try:
                scopes[scope] = ScopeLimits(
                    getattr(self, f"{scope}_delay_after"),
                    getattr(self, f"{scope}_ban_after"),
                    getattr(self, f"{scope}_window"),
                )
            except ValueError as exc:
                raise ValueError(f"{scope}_{exc}") from None
        return LockoutConfig(
            storage_uri=self.storage,
            storage_password=self.storage_password.value if self.storage_password else None,
            storage_timeout=self.storage_timeout,
            source=scopes["source"],
            account=scopes["account"],
            base_delay=self.base_delay,
            max_delay=self.max_delay,
            ban_time=self.ban_time,
            exempt_time=self.exempt_time,
            ipv4_prefix=self.ipv4_prefix,
            ipv6_prefix=self.ipv6_prefix,
            on_storage_error=self.on_storage_error,
            storage_retry_after=self.storage_retry_after,
        )
