"""The [containers] section: how apps run (Docker or local processes)."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.config.fields import doc


@dataclass(frozen=True)
class ContainersConfig:
    enabled: bool = field(default=False, metadata=doc("Run and watch installed apps."))
