"""Where a new password comes from: a prompt on the terminal, or one line on stdin.

Never from argv: a command line is visible to every local user in ``ps`` and lands in shell
history. Scripts pipe the password with ``--password-stdin`` (as ``docker login`` does).
"""

from __future__ import annotations

import argparse
import getpass
import hmac
import sys
from typing import TextIO

from gateway.cli.output import Refused, UsageError
from gateway.store import InvalidValue, validation


def add_password_stdin_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password as one line from stdin instead of prompting",
    )


def read_new_password(*, from_stdin: bool, stdin: TextIO | None = None) -> str:
    """The new password, checked against the store's length rule before any hashing."""
    stream = stdin or sys.stdin
    password = _from_stream(stream) if from_stdin else _from_prompt(stream)
    try:
        return validation.password(password)
    except InvalidValue as exc:
        raise Refused(str(exc), "invalid") from None


def _from_stream(stream: TextIO) -> str:
    line = stream.readline()
    if not line:
        raise UsageError("--password-stdin: stdin is empty")
    # Only the line end goes: spaces inside or around a password are part of it.
    return line.removesuffix("\n").removesuffix("\r")


def _from_prompt(stream: TextIO) -> str:
    if not stream.isatty():
        # getpass would fall back to reading stdin with a warning: refuse instead, so a
        # script that forgot the flag fails clearly rather than hanging or misreading.
        raise UsageError("no terminal to ask for the password: pipe it with --password-stdin")
    first = getpass.getpass("New password: ")
    second = getpass.getpass("Repeat it: ")
    if not hmac.compare_digest(first.encode(), second.encode()):
        raise Refused("the two passwords differ", "invalid")
    return first


def confirm(question: str, *, assume_yes: bool, stdin: TextIO | None = None) -> bool:
    """Ask before something that cannot be undone; without a terminal, ``--yes`` is required."""
    if assume_yes:
        return True
    stream = stdin or sys.stdin
    if not stream.isatty():
        raise UsageError("refusing without confirmation: stdin is not a terminal; pass --yes")
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    return stream.readline().strip().lower() in {"y", "yes"}
