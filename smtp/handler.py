"""``SubmissionHandler``: the aiosmtpd handler of the submission ports (STYLE.md §3).

AUTH goes through the portal (``smtp/auth.py``); MAIL checks the envelope sender against
what the login may use; RCPT checks syntax and the recipient limit; DATA checks header From
and Sender, adds the RFC 6409 fix-ups, signs, and answers 250 only once the spool holds the
message on disk. Every refusal is a type answered from ``smtp/answers.py``; anything
unexpected is logged with its traceback and answered 451, never 250.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from gateway.audit import AuditLog
from gateway.auth import AppIdentity, Identity
from smtp import addresses, message
from smtp.answers import LOCAL_ERROR, answer
from smtp.auth import SmtpLogin, authenticate, read_login, read_plain
from smtp.errors import (
    BadRecipient,
    HeaderSenderNotAllowed,
    MalformedMessage,
    NotAuthenticated,
    SenderNotAllowed,
    SubmissionRefused,
    TooManyRecipients,
)
from smtp.metrics import MailMetrics
from smtp.outbox import Outbox
from smtp.senders import SenderPolicy, SenderRights
from smtp.session import SubmissionSession
from smtp.spool import Envelope as SpoolEnvelope
from smtp.spool import new_id

log = logging.getLogger(__name__)

DOOR = "smtp"


@dataclass(frozen=True)
class SubmissionLimits:
    max_recipients: int
    max_header_bytes: int
    max_header_fields: int


class SubmissionHandler:
    def __init__(
        self,
        *,
        port_name: str,
        hostname: str,
        limits: SubmissionLimits,
        smtp_login: SmtpLogin,
        policy: SenderPolicy,
        outbox: Outbox,
        audit: AuditLog,
        metrics: MailMetrics,
    ) -> None:
        self._port = port_name
        self._hostname = hostname
        self._limits = limits
        self._login = smtp_login
        self._policy = policy
        self._outbox = outbox
        self._audit = audit
        self._metrics = metrics

    # -- AUTH (overrides aiosmtpd's built-in mechanisms) -------------------------------

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        return await authenticate(server, await read_plain(server, args), self._login,
                                  _source(server.session))

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        return await authenticate(server, await read_login(server, args), self._login,
                                  _source(server.session))

    # -- the transaction ---------------------------------------------------------------

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        mail_options: list[str],
    ) -> str:
        try:
            rights = await self._rights(session)
            reason = await self._policy.refusal(rights, address)
            if reason is not None:
                self._refused(session, "envelope sender", reason)
                raise SenderNotAllowed(reason)
            await self._policy.check_outbound(address)
        except SubmissionRefused as refused:
            return self._answer(refused)
        except Exception:
            log.exception("MAIL FROM failed unexpectedly")
            return LOCAL_ERROR
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        try:
            if len(envelope.rcpt_tos) >= self._limits.max_recipients:
                raise TooManyRecipients(
                    f"too many recipients (at most {self._limits.max_recipients} per message)"
                )
            if addresses.split(address) is None:
                raise BadRecipient(f"<{address}> is not a deliverable address")
        except SubmissionRefused as refused:
            return self._answer(refused)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        try:
            return await self._data(server, session, envelope)
        except SubmissionRefused as refused:
            return self._answer(refused)
        except Exception:
            log.exception("DATA failed unexpectedly; nothing was queued")
            self._metrics.submissions.labels(self._port, "451").inc()
            return LOCAL_ERROR

    async def _data(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        rights = await self._rights(session)
        sender = envelope.mail_from or ""
        data = message.normalize_newlines(envelope.original_content or b"")
        parsed = message.parse(
            data, max_header_bytes=self._limits.max_header_bytes,
            max_fields=self._limits.max_header_fields,
        )
        if len(parsed.values("from")) > 1 or len(parsed.values("sender")) > 1:
            raise MalformedMessage("more than one From or Sender header field (RFC 5322 §3.6)")
        for key in message.SENDER_FIELDS:
            for address in message.sender_addresses(parsed, key):
                reason = await self._policy.refusal(rights, address)
                if reason is not None:
                    where = f"header {key.capitalize()}"
                    self._refused(session, where, reason)
                    raise HeaderSenderNotAllowed(f"{where}: {reason}")
        message_id = new_id()
        fixed = message.fix_up(
            parsed, envelope_sender=sender, hostname=self._hostname,
            received=self._received(server, session, message_id),
        )
        from_addresses = message.sender_addresses(fixed, "from")
        identity = _identity(session)
        queued = await self._outbox.accept(
            SpoolEnvelope(
                id=message_id, sender=sender, recipients=tuple(envelope.rcpt_tos),
                arrived_at=0.0, submitted_by=rights.login, source=_source(session),
            ),
            fixed.to_bytes(),
            signing_domain=addresses.domain_of(from_addresses[0]) if from_addresses else None,
        )
        self._metrics.submissions.labels(self._port, "accepted").inc()
        self._audit.record(
            "mail.submit", door=DOOR, source=_source(session),
            app_id=identity.app_id if isinstance(identity, AppIdentity) else None,
            user_id=getattr(identity, "user_id", None), login=rights.login,
            reason=f"{queued.id} from <{sender}> to {len(envelope.rcpt_tos)} recipient(s)",
        )
        return f"250 2.0.0 OK queued as {queued.id}"

    # -- helpers -------------------------------------------------------------------------

    async def _rights(self, session: Session) -> SenderRights:
        assert isinstance(session, SubmissionSession)
        identity = session.identity
        if identity is None:
            raise NotAuthenticated("Authentication required")
        if session.rights is None:
            session.rights = await self._policy.rights_for(identity)
        return session.rights

    def _answer(self, refused: SubmissionRefused) -> str:
        reply = answer(refused)
        self._metrics.submissions.labels(self._port, reply[:3]).inc()
        return reply

    def _refused(self, session: Session, where: str, reason: str) -> None:
        identity = _identity(session)
        self._audit.record(
            "mail.refused", door=DOOR, source=_source(session),
            app_id=identity.app_id if isinstance(identity, AppIdentity) else None,
            user_id=getattr(identity, "user_id", None),
            login=session.rights.login if isinstance(session, SubmissionSession)
            and session.rights else None,
            reason=f"{where}: {reason}"[:500],
        )

    def _received(self, server: SMTP, session: Session, message_id: str) -> str:
        # RFC 3848: ESMTPSA = ESMTP with AUTH over TLS, ESMTPA = with AUTH.
        tls = session.ssl is not None or (server.transport is not None and bool(
            server.transport.get_extra_info("sslcontext")
        ))
        protocol = "ESMTPSA" if tls else "ESMTPA"
        helo = _clean(session.host_name or "unknown")
        source = _source(session) or "unknown"
        return (
            f"Received: from {helo} ([{source}])\r\n\tby {self._hostname} with {protocol} "
            f"id {message_id};\r\n\t{formatdate()}"
        )


def _identity(session: Session) -> Identity | None:
    return session.identity if isinstance(session, SubmissionSession) else None


def _source(session: Any) -> str | None:
    peer = getattr(session, "peer", None)
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return None


def _clean(text: str) -> str:
    return "".join(c for c in text if c.isprintable() and c not in "()[]\\")[:100]
