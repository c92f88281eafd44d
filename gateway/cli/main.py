"""Entry point of the ``gateway`` command.

Each command group is a module with ``register(subparsers)``; a command's handler is set
with ``parser.set_defaults(handler=...)`` and receives the parsed args and the loaded
config, and answers an exit code. Handlers that need the store are ``async``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.config import ConfigError, load_config

# Command groups, in the order `gateway --help` lists them. A module that does not exist
# yet is skipped, so a group lands with the part that owns it.
COMMAND_MODULES = [
    "gateway.cli.serve",
    "gateway.cli.users",
    "gateway.cli.groups",
    "gateway.cli.apps",
    "gateway.cli.ldap_cmd",
    "gateway.cli.mail",
    "gateway.cli.bans",
    "gateway.cli.check",
    "gateway.cli.config_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="LDAP, login wall, mail relay and rate limiting for self-hosted apps.",
    )
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=Path(os.environ["GATEWAY_CONFIG"]) if os.environ.get("GATEWAY_CONFIG") else None,
        help="TOML config file (default: $GATEWAY_CONFIG, else built-in defaults)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"gateway: config error: {exc}", file=sys.stderr)
        return 2
    handler = args.handler
    if inspect.iscoroutinefunction(handler):
        result = asyncio.run(handler(args, config))
    else:
        result = handler(args, config)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
