"""The rate-limit and lockout policy every door asks, built once from the config."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from gateway.config import Config, ConfigError
from ratelimit import AttemptPolicy, LockoutPolicy, NoLimits, UnsupportedStorage
from ratelimit.requests import parse_rate


def build_policy(config: Config, registry: CollectorRegistry | None = None) -> AttemptPolicy:
    """The policy for this process: ``LockoutPolicy`` on ``[ratelimit] storage``.

    The runtime and every door only ever see ``AttemptPolicy``. ``registry`` is where the
    policy's metrics go (the process's ``Metrics.registry``). No connection is made here:
    an unreachable Redis is answered per ``on_storage_error`` at the first attempt.
    """
    section = config.ratelimit
    try:
        parse_rate(section.login_rate)
    except ValueError as exc:
        raise ConfigError(config.source, "ratelimit.login_rate", str(exc)) from None
    if not section.enabled:
        return NoLimits()
    try:
        return LockoutPolicy.open(section.lockout(), registry=registry)
    except UnsupportedStorage as exc:
        raise ConfigError(config.source, "ratelimit.storage", str(exc)) from None
    except ValueError as exc:
        raise ConfigError(config.source, "ratelimit", str(exc)) from None
