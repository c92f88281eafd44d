"""What can go wrong starting or stopping the servers, as types the process maps to exit codes."""

from __future__ import annotations

import os


class StartupError(Exception):
    """A server could not be built or started; the ones already started were stopped again."""

    def __init__(self, server: str, reason: str) -> None:
        self.server = server
        self.reason = reason
        super().__init__(f"{server}: {reason}")


class CannotListen(OSError):
    """A listening socket could not be bound; the message names the address."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"cannot listen on {address}: {reason}")

    def __str__(self) -> str:
        return f"cannot listen on {self.address}: {self.reason}"


class ShutdownError(Exception):
    """Stopping went wrong in one or more places; every failure is kept, not just the first."""

    def __init__(self, failures: list[tuple[str, BaseException]]) -> None:
        self.failures = failures
        parts = "; ".join(f"{where}: {describe(exc)}" for where, exc in failures)
        super().__init__(f"{len(failures)} failure(s) while stopping: {parts}")


def socket_error(exc: OSError) -> str:
    """The bare reason ("address already in use"); loops word their own messages differently."""
    if exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc)


def describe(exc: BaseException) -> str:
    """An exception as one readable phrase (some, like TimeoutError(), have no message)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
