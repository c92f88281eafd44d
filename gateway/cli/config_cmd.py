"""``gateway config example``: print a config file documenting every key."""

from __future__ import annotations

import argparse

from gateway.config import Config
from gateway.config.example import render_example


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("config", help="show configuration")
    inner = parser.add_subparsers(dest="config_command", metavar="ACTION")
    inner.required = True
    example = inner.add_parser("example", help="print a config file with every key and default")
    example.set_defaults(handler=_example)


def _example(args: argparse.Namespace, config: Config) -> int:
    print(render_example(), end="")
    return 0
