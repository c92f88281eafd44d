"""Each door's own "try later", in one table.

A refused attempt (``Delay``/``Banned``) or a connection over its cap is answered with the
protocol's standard temporary failure, never with "wrong password" (a client would prompt
again or, worse, drop a saved password) and never with details of the lockout beyond what
the protocol carries (HTTP's ``Retry-After``):

========  =====================================  ======================================
door      attempt refused (delay, ban, storage)  connection over its cap
========  =====================================  ======================================
ldap      51 busy                                51 busy (then close)
smtp      454 4.7.0 (AUTH, RFC 4954)             421 4.7.0 (RFC 5321: closing)
imap      NO [UNAVAILABLE] (RFC 5530)            * BYE [UNAVAILABLE]
pop3      -ERR [SYS/TEMP] (RFC 3206)             -ERR [IN-USE] (RFC 2449/3206)
http      429 + Retry-After (RFC 6585)           429 + Retry-After
========  =====================================  ======================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ratelimit.decisions import Banned, Decision, Delay

Protocol = Literal["ldap", "smtp", "imap", "pop3", "http"]
When = Literal["attempt", "connection"]

LDAP_BUSY = 51


@dataclass(frozen=True)
class TryLater:
    """What to send: ``code`` (LDAP result code, SMTP/HTTP status, IMAP/POP3 status word)
    and ``text`` (the rest of the line); ``headers`` for HTTP."""

    code: int | str
    text: str
    retry_after: int
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def line(self) -> str:
        """The reply line as sent by line protocols (SMTP, IMAP without tag, POP3)."""
        return f"{self.code} {self.text}"


_ATTEMPT = "Too many attempts, try again later"
_CONNECTIONS = "Too many connections, try again later"

_TABLE: dict[tuple[Protocol, When], tuple[int | str, str]] = {
    ("ldap", "attempt"): (LDAP_BUSY, _ATTEMPT),
    ("ldap", "connection"): (LDAP_BUSY, _CONNECTIONS),
    ("smtp", "attempt"): (454, f"4.7.0 {_ATTEMPT}"),
    ("smtp", "connection"): (421, f"4.7.0 {_CONNECTIONS}"),
    ("imap", "attempt"): ("NO", f"[UNAVAILABLE] {_ATTEMPT}"),
    ("imap", "connection"): ("* BYE", f"[UNAVAILABLE] {_CONNECTIONS}"),
    ("pop3", "attempt"): ("-ERR", f"[SYS/TEMP] {_ATTEMPT}"),
    ("pop3", "connection"): ("-ERR", f"[IN-USE] {_CONNECTIONS}"),
    ("http", "attempt"): (429, _ATTEMPT),
    ("http", "connection"): (429, _CONNECTIONS),
}


def retry_seconds(retry_after: float) -> int:
    """Whole seconds, rounded up and at least 1: a client retrying early is refused again."""
    return max(1, math.ceil(retry_after))


def try_later(protocol: Protocol, retry_after: float, when: When = "attempt") -> TryLater:
    code, text = _TABLE[(protocol, when)]
    seconds = retry_seconds(retry_after)
    headers = {"Retry-After": str(seconds)} if protocol == "http" else {}
    return TryLater(code, text, seconds, headers)


def answer(protocol: Protocol, decision: Decision) -> TryLater | None:
    """The refusal for a policy decision; None for Allow."""
    if isinstance(decision, Banned | Delay):
        return try_later(protocol, decision.retry_after)
    return None
