"""Typed configuration, read once at start and passed down (never read from globals)."""

from gateway.config.errors import ConfigError
from gateway.config.loader import load_config
from gateway.config.model import (
    AdminConfig,
    AuthConfig,
    Config,
    DemoConfig,
    ListenAddress,
    LogConfig,
    RuntimeConfig,
    Secret,
    StoreConfig,
)

__all__ = [
    "AdminConfig",
    "AuthConfig",
    "Config",
    "ConfigError",
    "DemoConfig",
    "ListenAddress",
    "LogConfig",
    "RuntimeConfig",
    "Secret",
    "StoreConfig",
    "load_config",
]
