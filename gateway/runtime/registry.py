"""Which module builds the server of each config section, imported only when it is enabled.

A protocol package is imported after the reactor is installed and only if its section says
``enabled = true``, so a gateway that serves LDAP alone never loads the mail stack. A section
that is enabled but whose module cannot be loaded is a startup error, never a silent skip.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from gateway.config import Config
from gateway.runtime.errors import StartupError
from gateway.runtime.server import Server, ServerContext

# Builds the server(s) of one section: ``build(ctx) -> Server | list[Server]``.
ServerBuilder = Callable[[ServerContext], "Server | Sequence[Server]"]

# Config section → "module:function", in start order: the container manager first, since
# the others route to and authenticate the apps it runs. Every builder is called, in this
# order, before any server starts: an earlier builder may leave a shared object (the
# container manager, the routing table) in ``ctx.extras`` for the later ones.
BUILDERS: dict[str, str] = {
    "containers": "gateway.containers.service:build",
    "ldap": "ldap.server:build",
    "proxyauth": "proxyauth.server:build",
    "mail": "smtp.server:build",
}


def enabled_builders(
    config: Config, table: dict[str, str] | None = None
) -> list[tuple[str, ServerBuilder]]:
    """The builders of the enabled sections, in table order."""
    found = []
    for section, target in (BUILDERS if table is None else table).items():
        if getattr(config, section).enabled:
            found.append((section, load_builder(section, target)))
    return found


def load_builder(section: str, target: str) -> ServerBuilder:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StartupError(
            section, f"[{section}] is enabled but {module_name} cannot be loaded: {exc}"
        ) from exc
    builder: Any = getattr(module, attr, None)
    if not callable(builder):
        raise StartupError(section, f"[{section}] is enabled but {target} is not a function")
    return builder  # type: ignore[no-any-return]


def build_servers(name: str, builder: ServerBuilder, ctx: ServerContext) -> list[Server]:
    """Call one builder; a single server or a list of them both come back as a list."""
    try:
        built = builder(ctx)
    except Exception as exc:
        raise StartupError(name, f"could not be built: {exc}") from exc
    servers: list[Any] = [built] if hasattr(built, "start") else list(built)
    for server in servers:
        if not (hasattr(server, "name") and hasattr(server, "start") and hasattr(server, "stop")):
            raise StartupError(name, f"the builder returned {server!r}, which is not a Server")
    return servers
