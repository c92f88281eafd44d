"""``GatewayPop3Server``: Twisted's POP3 with logins through the portal.

USER/PASS and AUTH PLAIN (RFC 5034, with or without an initial response) become
credentials for ``ReaderLogin``; failures are answered from ``answers.py``, never with
an exception's text (Twisted's ``_ebUnexpected`` sends ``failure.getErrorMessage()``).
APOP is refused: it needs the password in clear on the server, which we never keep.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet import defer
from twisted.mail import pop3
from twisted.python import failure as tw_failure

from gateway.auth.credentials import Door
from smtp.maildir.access import Grant
from smtp.pop3.answers import login_refusal

log = logging.getLogger(__name__)

LoginFn = Callable[[str, str, Door, str | None], Coroutine[Any, Any, Grant]]
MAX_SASL = 255 * 3 + 2


class GatewayPop3Server(pop3.POP3):
    def __init__(
        self, *, login: LoginFn, maildrop_for: Callable[[Grant], pop3.IMailbox],
        source: str | None, on_close: Callable[[GatewayPop3Server], None] | None = None,
    ) -> None:
        self._login = login
        self._maildrop_for = maildrop_for
        self._source = source
        self._on_close = on_close
        self.magic = b"<gateway>"

    def connectionLost(self, reason: tw_failure.Failure) -> None:  # type: ignore[override]
        super().connectionLost(reason)
        if self._on_close is not None:
            self._on_close(self)

    def state_COMMAND(self, line: bytes) -> None:
        try:
            self.processCommand(*line.split(b" "))
        except (ValueError, AttributeError, pop3.POP3Error, TypeError, IndexError):
            self.failResponse(b"Bad command or argument")

    def listCapabilities(self) -> list[bytes]:
        return [b"TOP", b"USER", b"UIDL", b"PIPELINING", b"RESP-CODES", b"AUTH-RESP-CODE",
                b"SASL PLAIN"]

    def do_APOP(self, user: bytes, digest: bytes) -> None:
        self.failResponse(b"[AUTH] APOP is not supported; use USER/PASS or AUTH PLAIN")

    def do_PASS(self, password: bytes, *words: bytes) -> None:
        if self._userIs is None:
            self.failResponse(b"USER required before PASS")
            return
        user, self._userIs = self._userIs, None
        self._start_login(user, b" ".join((password, *words)))

    def do_AUTH(self, args: bytes | None = None, *rest: bytes) -> None:
        if args is None:
            self.successResponse(b"Supported authentication methods:")
            self.sendLine(b"PLAIN")
            self.sendLine(b".")
            return
        if args.strip().upper() != b"PLAIN":
            self.failResponse(b"Unsupported SASL mechanism")
            return
        if rest:
            self._plain(rest[0])
            return
        self.sendLine(b"+ ")
        self.state = "AUTH"

    def state_AUTH(self, line: bytes) -> None:
        self.state = "COMMAND"
        self._plain(line)

    def _plain(self, answer: bytes) -> None:
        answer = answer.strip()
        if answer == b"*":
            self.failResponse(b"AUTH cancelled")
            return
        try:
            decoded = base64.b64decode(answer, validate=True)
        except (binascii.Error, ValueError):
            self.failResponse(b"Invalid BASE64 encoding")
            return
        parts = decoded.split(b"\0")
        if len(decoded) > MAX_SASL or len(parts) != 3 or not parts[1]:
            self.failResponse(b"Invalid PLAIN response (RFC 4616)")
            return
        self._start_login(parts[1], parts[2])

    def _start_login(self, user: bytes, password: bytes) -> None:
        try:
            login, secret = user.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:
            self.failResponse(login_refusal(_BadBytes()))
            return
        self.blocked = []
        future = asyncio.ensure_future(self._login(login, secret, "pop3", self._source))
        defer.Deferred.fromFuture(future).addCallbacks(self._logged_in, self._login_failed)

    def _logged_in(self, grant: Grant) -> None:
        self.mbox = self._maildrop_for(grant)
        self.successResponse(b"Logged in")
        self._unblock(None)

    def _login_failed(self, reason: tw_failure.Failure) -> None:
        self.failResponse(login_refusal(reason.value or RuntimeError("no failure value")))
        self._unblock(None)


class _BadBytes(Exception):
    pass
