"""A receiving SMTP server on loopback for the delivery tests (an aiosmtpd sink).

Per recipient it can answer 4xx a given number of times before accepting, or always 5xx;
it can require STARTTLS and AUTH (to play a smarthost). What it accepted is kept with the
envelope; ``wait_for`` awaits a count with a deadline instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes


@dataclass
class SinkBehaviour:
    defer_times: dict[str, int] = field(default_factory=dict)
    reject: set[str] = field(default_factory=set)
    reply_after_data: str | None = None


class SinkHandler:
    def __init__(self, behaviour: SinkBehaviour) -> None:
        self.behaviour = behaviour
        self.received: list[Received] = []
        self.rcpt_attempts: Counter[str] = Counter()
        self.changed = asyncio.Event()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        options: list[str],
    ) -> str:
        self.rcpt_attempts[address] += 1
        if address in self.behaviour.reject:
            return "550 5.1.1 No such user here"
        left = self.behaviour.defer_times.get(address, 0)
        if left > 0:
            self.behaviour.defer_times[address] = left - 1
            return "451 4.3.2 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.behaviour.reply_after_data:
            return self.behaviour.reply_after_data
        self.received.append(
            # aiosmtpd keeps the null reverse-path as the literal "<>".
            Received((envelope.mail_from or "").strip("<>"), list(envelope.rcpt_tos),
                     bytes(envelope.original_content or b""))
        )
        self.changed.set()
        return "250 2.0.0 Stored"


class Sink:
    def __init__(
        self,
        behaviour: SinkBehaviour | None = None,
        *,
        tls: ssl.SSLContext | None = None,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.handler = SinkHandler(behaviour or SinkBehaviour())
        self._tls = tls
        self._login = login
        self._server: asyncio.AbstractServer | None = None
        self.port = 0
        self.logins: list[str] = []

    def _authenticator(self, server: Any, session: Any, envelope: Any, mechanism: str,
                       auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        ok = self._login is not None and (
            auth_data.login.decode(), auth_data.password.decode()) == self._login
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)

    async def start(self) -> int:
        loop = asyncio.get_running_loop()

        def protocol() -> SMTP:
            options: dict[str, Any] = {"hostname": "sink.test", "loop": loop}
            if self._tls is not None:
                options.update(tls_context=self._tls, require_starttls=True)
            if self._login is not None:
                options.update(authenticator=self._authenticator, auth_required=True)
            return SMTP(self.handler, **options)

        self._server = await loop.create_server(protocol, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), 5)

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.received) < count:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(
                    f"sink received {len(self.received)} message(s), expected {count}"
                )
            self.handler.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.handler.changed.wait(), min(left, 0.5))
        return self.received
