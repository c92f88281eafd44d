"""How a command answers: aligned tables for people, ``--json`` for scripts, errors on stderr.

Every command takes ``--json``. Its JSON keys are part of the interface (scripts parse them),
so they are spelled out where each command builds its record, never derived from a
dataclass that might grow a secret field. Failures are types with their exit code:
1 when the store or a policy refuses, 2 when the command was used wrongly.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

EXIT_REFUSED = 1
EXIT_USAGE = 2


class CommandFailed(Exception):
    """A command that cannot do what was asked; ``exit_code`` says which kind of failure."""

    exit_code = EXIT_REFUSED
    kind = "refused"


class Refused(CommandFailed):
    """The store or a rule said no: no such user, a name taken, a bad value."""

    def __init__(self, message: str, kind: str = "refused") -> None:
        super().__init__(message)
        self.kind = kind


class UsageError(CommandFailed):
    """The command was called wrongly (a missing confirmation, no way to read a password)."""

    exit_code = EXIT_USAGE
    kind = "usage"


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="answer machine-readable JSON with stable keys"
    )


def timestamp(at: float | None) -> str | None:
    """A store time as ISO 8601 UTC, the form JSON consumers parse everywhere."""
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def short_time(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M")


def print_json(value: Any, out: TextIO | None = None) -> None:
    print(json.dumps(value, indent=2, sort_keys=True), file=out or sys.stdout)


def cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO | None = None
) -> None:
    """Columns padded to their widest cell; the last one is not padded (no trailing blanks)."""
    text = [[h.upper() for h in headers], *[[cell(v) for v in row] for row in rows]]
    widths = [max(len(line[i]) for line in text) for i in range(len(headers))]
    for line in text:
        padded = [c.ljust(w) for c, w in zip(line[:-1], widths[:-1], strict=True)]
        print("  ".join([*padded, line[-1]]), file=out or sys.stdout)


def print_fields(fields: Mapping[str, Any], out: TextIO | None = None) -> None:
    """One ``name: value`` line per field, values aligned, for a single record."""
    width = max((len(k) for k in fields), default=0) + 1
    for key, value in fields.items():
        print(f"{(key + ':').ljust(width)} {cell(value)}", file=out or sys.stdout)


def report_failure(error: CommandFailed, *, as_json: bool, err: TextIO | None = None) -> int:
    """Tell the operator why on stderr and answer the exit code."""
    stream = err or sys.stderr
    if as_json:
        print(json.dumps({"error": str(error), "kind": error.kind}), file=stream)
    else:
        print(f"gateway: {error}", file=stream)
    return error.exit_code
