"""The [ratelimit] section: the lockout policy every door asks first."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.config.fields import doc


@dataclass(frozen=True)
class RateLimitConfig:
    enabled: bool = field(
        default=False, metadata=doc("Apply the lockout policy (off: every attempt is allowed).")
    )
