"""Run every enabled server in one asyncio loop, with Twisted's reactor on it.

``run(config)`` is the whole process (``gateway serve``); ``Runtime`` is the same thing
without the loop and signals, for embedding and tests. Importing this package never imports
``twisted.internet.reactor`` (the reactor must be installed on the loop first), and the
names below load on first use, so ``gateway.runtime.reactor`` stays cheap to import: the
test suite installs the reactor through it before anything else.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.runtime.errors import CannotListen, ShutdownError, StartupError
    from gateway.runtime.group import ServerGroup, ServerStatus
    from gateway.runtime.inflight import InFlight
    from gateway.runtime.process import run
    from gateway.runtime.registry import BUILDERS, ServerBuilder
    from gateway.runtime.runtime import Runtime
    from gateway.runtime.server import Address, Server, ServerContext

_EXPORTS = {
    "Address": "gateway.runtime.server",
    "BUILDERS": "gateway.runtime.registry",
    "CannotListen": "gateway.runtime.errors",
    "InFlight": "gateway.runtime.inflight",
    "Runtime": "gateway.runtime.runtime",
    "Server": "gateway.runtime.server",
    "ServerBuilder": "gateway.runtime.registry",
    "ServerContext": "gateway.runtime.server",
    "ServerGroup": "gateway.runtime.group",
    "ServerStatus": "gateway.runtime.group",
    "ShutdownError": "gateway.runtime.errors",
    "StartupError": "gateway.runtime.errors",
    "run": "gateway.runtime.process",
}

__all__ = [
    "BUILDERS",
    "Address",
    "CannotListen",
    "InFlight",
    "Runtime",
    "Server",
    "ServerBuilder",
    "ServerContext",
    "ServerGroup",
    "ServerStatus",
    "ShutdownError",
    "StartupError",
    "run",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gateway.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
