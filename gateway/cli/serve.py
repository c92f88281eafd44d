"""``gateway serve``: run every enabled server until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from gateway.config import Config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "serve",
        help="run the gateway (with no config: SQLite under ./data, loopback ports, a demo admin)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="directory for the SQLite store and spools (overrides runtime.data_dir)",
    )
    # Synchronous on purpose: run() creates its own loop, with Twisted's reactor on it.
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace, config: Config) -> int:
    # Imported here so that other commands never load the servers' dependencies.
    from gateway.runtime import run

    if args.data_dir is not None:
        runtime = dataclasses.replace(config.runtime, data_dir=args.data_dir)
        config = dataclasses.replace(config, runtime=runtime)
    return run(config)
