"""The [proxyauth] section: the login wall in front of web apps."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.config.fields import doc


@dataclass(frozen=True)
class ProxyAuthConfig:
    enabled: bool = field(default=False, metadata=doc("Serve the login wall."))
