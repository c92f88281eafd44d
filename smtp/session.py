"""The aiosmtpd protocol as the submission ports run it: typed session, connection caps, drain.

The protocol is aiosmtpd's; this subclass only adds what a server around it needs: the
session carries the login's identity and sender rights, an optional connection limiter
(duck-typed ``acquire(key) -> bool`` / ``release(key)``) refuses a connection with 421
before the greeting, and every open connection is known, so ``stop()`` can wait for the
transactions under way and then close the rest with 421 (RFC 5321 §3.8).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from aiosmtpd.smtp import SMTP, Session

from gateway.auth import Identity
from smtp.senders import SenderRights

log = logging.getLogger(__name__)

TOO_MANY = b"421 4.7.0 Too many connections from your address, try again later\r\n"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"


class ConnectionLimiter(Protocol):
    def acquire(self, key: str) -> bool: ...

    def release(self, key: str) -> None: ...


class NoConnectionLimit:
    def acquire(self, key: str) -> bool:
        return True

    def release(self, key: str) -> None:
        return None


class SubmissionSession(Session):
    """aiosmtpd's session plus who logged in and what they may send as."""

    # aiosmtpd sets ``login_data`` after every AUTH and logs a deprecation warning through
    # its property each time; a plain attribute here keeps the log clean.
    login_data: Any = None

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.rights: SenderRights | None = None

    @property
    def identity(self) -> Identity | None:
        return self.auth_data if self.authenticated else None


class OpenSessions:
    """The connections of one listener, so that stopping can drain them."""

    def __init__(self) -> None:
        self.protocols: set[SubmissionProtocol] = set()
        self._changed = asyncio.Event()

    def add(self, protocol: SubmissionProtocol) -> None:
        self.protocols.add(protocol)

    def discard(self, protocol: SubmissionProtocol) -> None:
        self.protocols.discard(protocol)
        self._changed.set()

    def busy(self) -> int:
        return sum(1 for p in self.protocols if p.in_transaction)

    async def drain(self, grace: float) -> None:
        """Wait (up to ``grace``) for transactions under way; then close every connection."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, grace)
        while self.busy() and loop.time() < deadline:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(0.1, deadline - loop.time()))
        for protocol in list(self.protocols):
            protocol.close_politely()


class SubmissionProtocol(SMTP):
    def __init__(
        self,
        handler: Any,
        *,
        sessions: OpenSessions,
        limiter: ConnectionLimiter,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self._sessions = sessions
        self._limiter = limiter
        self._limit_key: str | None = None
        self._refused = False

    def _create_session(self) -> Session:
        return SubmissionSession(self.loop)

    @property
    def in_transaction(self) -> bool:
        return self.envelope is not None and self.envelope.mail_from is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None and self._original_transport is None
        if first:
            peer = transport.get_extra_info("peername")
            key = str(peer[0]) if peer else "unknown"
            if not self._limiter.acquire(key):
                self._refused = True
                transport.write(TOO_MANY)  # type: ignore[attr-defined]
                transport.close()
                return
            self._limit_key = key
            self._sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        if self._limit_key is not None:
            self._limiter.release(self._limit_key)
            self._limit_key = None
        self._sessions.discard(self)
        super().connection_lost(error)

    def close_politely(self) -> None:
        transport = self.transport
        # A connection the client or aiosmtpd is already closing has nobody left to tell;
        # asyncio's TLS transport, closed a second time, even drops its protocol and raises
        # on the next write.
        if transport is None or transport.is_closing():
            return
        with contextlib.suppress(RuntimeError, OSError):
            transport.write(SHUTTING_DOWN.encode() + b"\r\n")  # type: ignore[attr-defined]
        transport.close()
