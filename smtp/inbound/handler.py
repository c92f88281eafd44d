"""``InboundHandler``: the aiosmtpd handler of the MX port (STYLE.md §3).

MAIL asks the DNS blocklists about the client (once per connection); RCPT resolves the
recipient (unknown → 550 5.1.1 at once, so the sending MTA bounces just that address) and
checks its mailbox's quota; DATA checks the header section, adds Return-Path and Received,
and answers 250 only once the message is durable (in the mailbox, or in the journal for
several mailboxes). Refusals are types answered from ``answers.py``; anything unexpected is
logged and answered 451, never 250.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any, Protocol

from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway.runtime.inflight import InFlight
from smtp import errors as submission_errors
from smtp import message
from smtp.inbound.answers import LOCAL_ERROR, answer
from smtp.inbound.delivery import MaildirDelivery
from smtp.inbound.dnsbl import Dnsbl, Listing
from smtp.inbound.errors import (
    Blocklisted,
    HeaderTooBig,
    InboundRefused,
    MailboxFull,
    MalformedMessage,
    StorageFailed,
    TooManyRecipients,
)
from smtp.inbound.journal import Parcel
from smtp.inbound.metrics import InboundMetrics
from smtp.inbound.recipients import RecipientIndex, Resolved
from smtp.maildir.store import MailboxStore
from smtp.spool import new_id

log = logging.getLogger(__name__)


class Forwarder(Protocol):
    """Hands copies for addresses elsewhere (list members) to the outbound queue."""

    async def forward(self, sender: str, recipients: list[str], content: bytes) -> None: ...


@dataclass(frozen=True)
class InboundLimits:
    max_recipients: int
    max_header_bytes: int
    max_header_fields: int
    default_quota: int


_TARGETS = "gateway_targets"
_LISTING = "gateway_dnsbl"


class InboundHandler:
    def __init__(
        self,
        *,
        hostname: str,
        limits: InboundLimits,
        recipients: RecipientIndex,
        dnsbl: Dnsbl,
        mailboxes: MailboxStore,
        delivery: MaildirDelivery,
        inflight: InFlight,
        metrics: InboundMetrics,
        forwarder: Forwarder | None = None,
    ) -> None:
        self._hostname = hostname
        self._limits = limits
        self._recipients = recipients
        self._dnsbl = dnsbl
        self._mailboxes = mailboxes
        self._delivery = delivery
        self._inflight = inflight
        self._metrics = metrics
        self._forwarder = forwarder

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        mail_options: list[str],
    ) -> str:
        try:
            listing = await self._listing(session)
            if listing is not None:
                why = f" ({listing.reason})" if listing.reason else ""
                raise Blocklisted(
                    f"Service unavailable; client [{_source(session)}] blocked using "
                    f"{listing.zone}{why}"
                )
        except InboundRefused as refused:
            self._metrics.messages.labels(answer(refused)[:3]).inc()
            return answer(refused)
        except Exception:
            log.exception("inbound MAIL failed unexpectedly")
            return LOCAL_ERROR
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        setattr(envelope, _TARGETS, [])
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        try:
            if len(envelope.rcpt_tos) >= self._limits.max_recipients:
                raise TooManyRecipients(
                    f"too many recipients (at most {self._limits.max_recipients})"
                )
            resolved = await self._recipients.resolve(address)
            if resolved.external and self._forwarder is None and not resolved.mailboxes:
                raise StorageFailed(f"<{address}>: its members cannot be reached now")
            declared = _declared_size(envelope.mail_options)
            for box, quota in resolved.quotas.items():
                self._check_quota(box, quota, declared or 0, at_rcpt=True)
        except InboundRefused as refused:
            reply = answer(refused)
            self._metrics.recipients.labels(reply[:3]).inc()
            return reply
        except Exception:
            log.exception("inbound RCPT failed unexpectedly")
            return LOCAL_ERROR
        _targets(envelope).append(resolved)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        self._metrics.recipients.labels("accepted").inc()
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        try:
            reply = await self._data(session, envelope)
        except InboundRefused as refused:
            reply = answer(refused)
        except Exception:
            log.exception("inbound DATA failed unexpectedly; nothing was kept")
            reply = LOCAL_ERROR
        self._metrics.messages.labels("accepted" if reply.startswith("250") else reply[:3]).inc()
        return reply

    async def _data(self, session: Session, envelope: Envelope) -> str:
        raw = message.normalize_newlines(envelope.original_content or b"")
        try:
            message.parse(
                raw, max_header_bytes=self._limits.max_header_bytes,
                max_fields=self._limits.max_header_fields,
            )
        except submission_errors.HeaderTooBig as exc:
            raise HeaderTooBig(exc.reason) from exc
        except submission_errors.MalformedMessage as exc:
            raise MalformedMessage(exc.reason) from exc
        mailboxes: dict[str, int] = {}
        external: dict[str, None] = {}
        for resolved in _targets(envelope):
            mailboxes.update(resolved.quotas)
            external.update(dict.fromkeys(resolved.external))
        parcel_id = new_id()
        sender = envelope.mail_from or ""
        content = self._trace(session, parcel_id, sender, envelope.rcpt_tos) + raw
        for box, quota in mailboxes.items():
            self._check_quota(box, quota, len(content), at_rcpt=False)
        parcel = Parcel(
            id=parcel_id, sender=sender, mailboxes=tuple(mailboxes), arrived=int(time.time()),
            size=len(content),
        )
        if external and self._forwarder is not None:
            await self._forwarder.forward(sender, list(external), raw)
        elif external:
            log.warning("inbound %s: no outbound queue to forward to %d list member(s)",
                        parcel_id, len(external))
        if parcel.mailboxes:
            # Shielded: a client hanging up mid-write must not leave half a delivery.
            await asyncio.shield(self._delivery.deliver(parcel, content))
            if len(parcel.mailboxes) > 1:
                self._inflight.spawn(self._delivery.spread(parcel), name=f"deliver-{parcel_id}")
        return f"250 2.0.0 OK id={parcel_id}"

    def _check_quota(self, box: str, quota: int, size: int, *, at_rcpt: bool) -> None:
        limit = quota or self._limits.default_quota
        if limit <= 0:
            return
        used = self._mailboxes.usage(box)
        if used >= limit or used + size > limit:
            where = "is full" if used >= limit or at_rcpt else "has no room for this message"
            raise MailboxFull(f"<{box}>: mailbox {where} (quota exceeded)")

    async def _listing(self, session: Session) -> Listing | None:
        if not hasattr(session, _LISTING):
            source = _source(session)
            setattr(session, _LISTING, await self._dnsbl.check(source) if source else None)
        found: Listing | None = getattr(session, _LISTING)
        return found

    def _trace(self, session: Session, parcel_id: str, sender: str, rcpts: list[str]) -> bytes:
        helo = _clean(session.host_name or "unknown")
        source = _source(session) or "unknown"
        protocol = "ESMTPS" if session.ssl else ("ESMTP" if session.extended_smtp else "SMTP")
        target = f"\r\n\tfor <{_clean(rcpts[0])}>" if len(rcpts) == 1 else ""
        return (
            f"Return-Path: <{_clean(sender)}>\r\n"
            f"Received: from {helo} ([{source}])\r\n\tby {self._hostname} with {protocol} "
            f"id {parcel_id}{target};\r\n\t{formatdate()}\r\n"
        ).encode()


def _targets(envelope: Envelope) -> list[Resolved]:
    found: list[Resolved] | None = getattr(envelope, _TARGETS, None)
    if found is None:
        found = []
        setattr(envelope, _TARGETS, found)
    return found


def _declared_size(options: list[str]) -> int | None:
    for option in options:
        key, _, value = option.partition("=")
        if key.upper() == "SIZE" and value.isdigit():
            return int(value)
    return None


def _source(session: Any) -> str | None:
    peer = getattr(session, "peer", None)
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return None


def _clean(text: str) -> str:
    return "".join(c for c in text if c.isprintable() and c not in "()[]\\<>\r\n")[:200]
