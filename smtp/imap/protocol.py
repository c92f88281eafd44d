"""``GatewayImapServer``: Twisted's IMAP4rev1 server with our logins, answers and fixes.

What changes from ``twisted.mail.imap4.IMAP4Server`` (machine-notes §3):

- LOGIN and AUTHENTICATE PLAIN (with or without an initial response, RFC 4959) go through
  ``ReaderLogin`` → the portal; failures are answered from ``answers.py``. Commands
  pipelined behind a login wait for it.
- No error text of an exception ever reaches the client: the base class's errbacks that
  send ``str(failure.value)`` are replaced (by their mangled names) with typed answers.
- FETCH of a body section without ``.PEEK`` (and RFC822, RFC822.TEXT) sets ``\\Seen`` and
  reports the new FLAGS; the common items are rendered by ``fetch.py`` from the stored
  bytes, many messages per loop turn, with partial ``<start.length>`` ranges.
- NOOP, CHECK and IDLE report messages other sessions expunged and new ones (IDLE also
  polls the Maildir for changes made by other processes).
- APPEND refuses a literal over the size limit before the client sends it
  (``NO [TOOBIG]``, RFC 7889) and a message over quota with ``NO [OVERQUOTA]`` (RFC 9208).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import logging
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from twisted.internet import defer, task
from twisted.mail import imap4
from twisted.python import failure as tw_failure

from gateway.auth.credentials import Door
from smtp.imap import fetch
from smtp.imap.account import MaildirAccount
from smtp.imap.answers import login_refusal
from smtp.imap.message import MaildirMessage
from smtp.imap.view import AppendTooLarge, MailboxView, OverQuota
from smtp.maildir.access import Grant

log = logging.getLogger(__name__)

LoginFn = Callable[[str, str, Door, str | None], Coroutine[Any, Any, Grant]]
AccountFn = Callable[[Grant], MaildirAccount]

# RFC 4616: authzid, authcid, passwd, each at most 255 octets of UTF-8.
MAX_SASL = 255 * 3 + 2


class GatewayImapServer(imap4.IMAP4Server):
    IDENT = b"IMAP4rev1 gateway ready"

    def __init__(
        self, *, login: LoginFn, account_for: AccountFn, max_size: int,
        idle_timeout: float, idle_poll: float, source: str | None,
        on_close: Callable[[GatewayImapServer], None] | None = None,
    ) -> None:
        super().__init__(chal={b"PLAIN": object})
        self._login = login
        self._account_for = account_for
        self._max_size = max_size
        self.POSTAUTH_TIMEOUT = int(idle_timeout)
        self._idle_poll = idle_poll
        self._source = source
        self._on_close = on_close
        self._tag: bytes | None = None
        self._poller: task.LoopingCall | None = None

    # -- connection ------------------------------------------------------------------

    def connectionLost(self, reason: tw_failure.Failure) -> None:  # type: ignore[override]
        self._stop_poll()
        if self.mbox is not None:
            self.mbox.removeListener(self)
            self.mbox.close()
            self.mbox = None
        super().connectionLost(reason)
        if self._on_close is not None:
            self._on_close(self)

    def lineReceived(self, line: bytes) -> None:
        if self.blocked is not None:
            self.blocked.append(line)
            return
        self.resetTimeout()
        handler = getattr(self, "parse_" + self.parseState)
        try:
            handler(line)
        except Exception:
            log.exception("IMAP: a command failed unexpectedly")
            self.sendBadResponse(self._tag, b"Internal error")

    def lineLengthExceeded(self, line: bytes) -> None:
        self.sendLine(b"* BYE [TOOBIG] Line too long")
        self.transport.loseConnection()

    def parse_command(self, line: bytes) -> Any:
        self._tag = line.split(None, 1)[0] if line.strip() else None
        return super().parse_command(line)

    def capabilities(self) -> dict[bytes, Any]:
        return {b"AUTH": [b"PLAIN"], b"SASL-IR": None, b"NAMESPACE": None, b"IDLE": None}

    # -- login -----------------------------------------------------------------------

    def do_LOGIN(self, tag: bytes, user: bytes, passwd: bytes) -> None:
        self._start_login(tag, user, passwd)

    unauth_LOGIN = (do_LOGIN, imap4.IMAP4Server.arg_astring, imap4.IMAP4Server.arg_finalastring)

    def do_AUTHENTICATE(self, tag: bytes, line: bytes) -> None:
        mechanism, _, initial = line.strip().partition(b" ")
        if mechanism.upper() != b"PLAIN":
            self.sendNegativeResponse(tag, b"Unsupported authentication mechanism")
            return
        if initial:
            self._plain_response(tag, initial.strip())
            return
        self.parseState = "pending"
        self._pendingLiteral = defer.Deferred()
        self.sendContinuationRequest(b"")
        self._pendingLiteral.addCallback(lambda answer: self._plain_response(tag, answer))

    unauth_AUTHENTICATE = (do_AUTHENTICATE, imap4.IMAP4Server.arg_line)

    def _plain_response(self, tag: bytes, answer: bytes) -> None:
        answer = answer.strip()
        if answer == b"*":
            self.sendBadResponse(tag, b"AUTHENTICATE cancelled")
            return
        try:
            decoded = base64.b64decode(answer, validate=True) if answer != b"=" else b""
        except (binascii.Error, ValueError):
            self.sendBadResponse(tag, b"Malformed response (not base64)")
            return
        parts = decoded.split(b"\0")
        if len(decoded) > MAX_SASL or len(parts) != 3 or not parts[1]:
            self.sendBadResponse(tag, b"Malformed PLAIN response (RFC 4616)")
            return
        self._start_login(tag, parts[1], parts[2])

    def _start_login(self, tag: bytes, user: bytes, passwd: bytes) -> None:
        try:
            login, password = user.decode("utf-8"), passwd.decode("utf-8")
        except UnicodeDecodeError:
            self.sendNegativeResponse(tag, login_refusal(_BadBytes()))
            return
        # Commands pipelined behind the login wait until it is decided.
        self.blocked = []
        future = asyncio.ensure_future(self._login(login, password, "imap", self._source))
        defer.Deferred.fromFuture(future).addCallbacks(
            self._logged_in, self._login_failed, callbackArgs=(tag,), errbackArgs=(tag,)
        )

    def _logged_in(self, grant: Grant, tag: bytes) -> None:
        self.account = self._account_for(grant)
        self.state = "auth"
        self.sendPositiveResponse(tag, b"[CAPABILITY " + b" ".join(self.listCapabilities())
                                  + b"] Logged in")
        self.setTimeout(self.POSTAUTH_TIMEOUT)
        self._unblock()

    def _login_failed(self, reason: tw_failure.Failure, tag: bytes) -> None:
        self.sendNegativeResponse(tag, login_refusal(reason.value))
        self._unblock()

    # -- NOOP, CHECK, IDLE: report what changed --------------------------------------

    def _report_changes(self) -> None:
        if not isinstance(self.mbox, MailboxView):
            return
        gone, added = self.mbox.sync()
        for seq in gone:
            self.sendUntaggedResponse(b"%d EXPUNGE" % seq)
        if gone or added:
            self.sendUntaggedResponse(b"%d EXISTS" % self.mbox.getMessageCount())

    def do_NOOP(self, tag: bytes) -> None:
        self._report_changes()
        self.sendPositiveResponse(tag, b"NOOP completed")

    unauth_NOOP = (do_NOOP,)
    auth_NOOP = unauth_NOOP
    select_NOOP = unauth_NOOP

    def do_CHECK(self, tag: bytes) -> None:
        self._report_changes()
        self.sendPositiveResponse(tag, b"CHECK completed")

    select_CHECK = (do_CHECK,)

    def do_IDLE(self, tag: bytes) -> None:
        super().do_IDLE(tag)
        self._report_changes()
        self._poller = task.LoopingCall(self._report_changes)
        self._poller.start(self._idle_poll, now=False).addErrback(
            lambda f: log.error("IMAP IDLE poll failed: %s", f.getErrorMessage())
        )

    select_IDLE = (do_IDLE,)
    auth_IDLE = select_IDLE

    def parse_idle(self, *args: Any) -> None:
        self._stop_poll()
        super().parse_idle(*args)

    def _stop_poll(self) -> None:
        if self._poller is not None and self._poller.running:
            self._poller.stop()
        self._poller = None

    # -- FETCH -----------------------------------------------------------------------

    def do_FETCH(self, tag: bytes, messages: Any, query: list[Any], uid: int = 0) -> None:
        view = self.mbox
        if not query or not isinstance(view, MailboxView) or not fetch.renderable(query):
            super().do_FETCH(tag, messages, query, uid)
            return
        try:
            found = view.fetch(messages, uid=bool(uid))
        except Exception as exc:
            self._typed_failure(tw_failure.Failure(exc), tag, b"FETCH")
            return
        seen = fetch.sets_seen(query) and view.isWriteable()
        if seen and not any(p.type == "flags" for p in query):
            query = [*query, imap4._FetchParser.Flags()]
        # Commands pipelined behind the FETCH wait until it is answered in full.
        if self.blocked is None:
            self.blocked = []
        self._fetch_batch(iter(found), tag, fetch.plan(query, bool(uid)), seen)

    select_FETCH = (do_FETCH, imap4.IMAP4Server.arg_seqset, imap4.IMAP4Server.arg_fetchatt)

    def _fetch_batch(
        self, found: Iterator[tuple[int, MaildirMessage]], tag: bytes,
        steps: list[tuple[Any, ...]], seen: bool,
    ) -> None:
        if self.transport is None or not self.connected:
            return
        chunk: list[bytes] = []
        try:
            for seq, msg in itertools.islice(found, fetch.BATCH):
                msg.data() if seen else None  # read before a rename for \Seen
                if seen and isinstance(self.mbox, MailboxView):
                    self.mbox.mark_seen(msg)
                chunk.append(fetch.render(seq, msg, steps))
        except Exception:
            log.exception("IMAP FETCH failed while rendering")
            self.transport.write(b"".join(chunk))
            self.sendBadResponse(tag, b"FETCH failed: internal error")
            self._unblock()
            return
        if chunk:
            self.transport.write(b"".join(chunk))
        if len(chunk) < fetch.BATCH:
            self.sendPositiveResponse(tag, b"FETCH completed")
            self._unblock()
            return
        from twisted.internet import reactor

        reactor.callLater(0, self._fetch_batch, found, tag, steps, seen)  # type: ignore[attr-defined]

    def spewMessage(self, id: int, msg: Any, query: list[Any], uid: int) -> Any:
        """Twisted's path (ENVELOPE, BODYSTRUCTURE, MIME parts), with ``\\Seen`` set."""
        view = self.mbox
        if isinstance(msg, MaildirMessage) and isinstance(view, MailboxView) and (
            fetch.sets_seen(query) and view.mark_seen(msg)
        ) and not any(p.type == "flags" for p in query):
            query = [*query, imap4._FetchParser.Flags()]
        return super().spewMessage(id, msg, query, uid)

    # -- APPEND ----------------------------------------------------------------------

    def arg_literal(self, line: bytes) -> Any:
        size_text = line[1:-1] if line[:1] == b"{" and line[-1:] == b"}" else b""
        if size_text.isdigit() and int(size_text) > self._max_size:
            # Answered before the "+": the client never sends the bytes (RFC 7889).
            self.sendNegativeResponse(self._tag, b"[TOOBIG] Message too big")
            return defer.Deferred()  # the command ends here; nothing waits on it
        return super().arg_literal(line)

    def _cbAppendGotMailbox(
        self, mbox: Any, tag: bytes, flags: list[bytes], date: Any, message: Any
    ) -> None:
        if not mbox:
            self.sendNegativeResponse(tag, b"[TRYCREATE] No such mailbox")
            return
        decoded = [f.decode("ascii", "replace") for f in flags]
        d = defer.maybeDeferred(mbox.addMessage, message, decoded, date)
        d.addCallbacks(self._appended, self._append_failed, callbackArgs=(tag, mbox),
                       errbackArgs=(tag,))

    def _appended(self, uid: int, tag: bytes, mbox: Any) -> None:
        if mbox is self.mbox:
            self._report_changes()
        validity = mbox.getUIDValidity()
        self.sendPositiveResponse(tag, b"[APPENDUID %d %d] APPEND completed" % (validity, uid))

    def _append_failed(self, reason: tw_failure.Failure, tag: bytes) -> None:
        if reason.check(OverQuota):
            self.sendNegativeResponse(tag, b"[OVERQUOTA] Quota exceeded")
        elif reason.check(AppendTooLarge):
            self.sendNegativeResponse(tag, b"[TOOBIG] Message too big")
        elif reason.check(OSError):
            log.error("IMAP APPEND could not write: %s", reason.getErrorMessage())
            self.sendNegativeResponse(tag, b"[SERVERBUG] Could not store the message")
        else:
            log.error("IMAP APPEND failed", exc_info=reason.value)
            self.sendNegativeResponse(tag, b"[SERVERBUG] APPEND failed")

    # -- the base class's leaky errbacks, replaced -----------------------------------

    def _typed_failure(self, reason: tw_failure.Failure, tag: bytes, what: bytes) -> None:
        if reason.check(imap4.IllegalQueryError):
            self.sendBadResponse(tag, what + b" failed: invalid search criteria")
        elif reason.check(imap4.IllegalClientResponse):
            self.sendBadResponse(tag, b"Illegal syntax")
        elif reason.check(imap4.ReadOnlyMailbox):
            self.sendNegativeResponse(tag, b"[READ-ONLY] Mailbox is read-only")
        elif reason.check(imap4.MailboxException):
            self.sendNegativeResponse(tag, what + b" failed")
        else:
            log.error("IMAP %s failed", what.decode(), exc_info=reason.value)
            self.sendBadResponse(tag, what + b" failed: internal error")

    def _IMAP4Server__ebDispatch(self, reason: tw_failure.Failure, tag: bytes) -> None:
        self._typed_failure(reason, tag, b"Command")

    def _IMAP4Server__ebSearch(self, reason: tw_failure.Failure, tag: bytes) -> None:
        self._typed_failure(reason, tag, b"SEARCH")

    def _IMAP4Server__ebStore(self, reason: tw_failure.Failure, tag: bytes) -> None:
        self._typed_failure(reason, tag, b"STORE")

    def _IMAP4Server__ebExpunge(self, reason: tw_failure.Failure, tag: bytes) -> None:
        self._typed_failure(reason, tag, b"EXPUNGE")

    def _IMAP4Server__ebCopy(self, reason: tw_failure.Failure, tag: bytes) -> None:
        self._typed_failure(reason, tag, b"COPY")

    def _IMAP4Server__ebClose(self, reason: tw_failure.Failure, tag: bytes) -> None:
        self._typed_failure(reason, tag, b"CLOSE")

    def _IMAP4Server__ebStatus(self, reason: tw_failure.Failure, tag: bytes, box: Any) -> None:
        self._typed_failure(reason, tag, b"STATUS")

    def _IMAP4Server__ebFetch(self, reason: tw_failure.Failure, tag: bytes) -> None:
        self.setTimeout(self._oldTimeout)
        del self._oldTimeout
        self._typed_failure(reason, tag, b"FETCH")


class _BadBytes(Exception):
    pass

