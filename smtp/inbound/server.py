"""Inbound SMTP (the MX) as a runtime server, and ``build_inbound(ctx)``.

aiosmtpd's protocol on the shared loop (``loop.create_server``), never its Controller. No
AUTH on this port: it only takes mail for the hosted domains that receive mail. ``start``
first delivers what a crash left committed in the journal; ``stop`` closes the listener,
lets transactions under way finish within the grace (closing the rest with 421), then
waits for the list deliveries still linking.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiosmtpd.smtp import SMTP

from gateway.runtime.inflight import InFlight
from gateway.runtime.server import Address, Server, ServerContext
from smtp.inbound.context import inbound_config, maildir_root, shared_mailboxes
from smtp.inbound.delivery import MaildirDelivery
from smtp.inbound.dnsbl import Dnsbl
from smtp.inbound.handler import Forwarder, InboundHandler, InboundLimits
from smtp.inbound.journal import Journal
from smtp.inbound.metrics import InboundMetrics
from smtp.inbound.recipients import RecipientIndex
from smtp.session import NoConnectionLimit, OpenSessions, SubmissionProtocol

log = logging.getLogger(__name__)

IDENT = "ESMTP gateway"
FORWARDER_EXTRA = "mail_forwarder"
METRICS_EXTRA = "mail_inbound_metrics"
# Header fields per message; past it 552 5.3.4 (the submission side's default).
MAX_HEADER_FIELDS = 1000


class InboundSmtpServer:
    def __init__(
        self, name: str, host: str, port: int, *, handler: InboundHandler,
        delivery: MaildirDelivery, recipients: RecipientIndex, inflight: InFlight,
        options: dict[str, Any], store: Any,
    ) -> None:
        self.name = name
        self._host = host
        self._port = port
        self._handler = handler
        self._delivery = delivery
        self._recipients = recipients
        self._inflight = inflight
        self._options = options
        self._store = store
        self._sessions = OpenSessions()
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> Address | None:
        """Where it listens once started (the real port when configured with port 0)."""
        if self._server is None or not self._server.sockets:
            return None
        host, port = self._server.sockets[0].getsockname()[:2]
        return (str(host), int(port))

    def _protocol(self) -> SMTP:
        # The submission side's protocol subclass: it knows its open sessions, so stop()
        # can drain them; no connection cap and no AUTH here.
        return SubmissionProtocol(
            self._handler, sessions=self._sessions, limiter=NoConnectionLimit(),
            loop=asyncio.get_running_loop(), **self._options,
        )

    async def start(self) -> list[Address]:
        with contextlib.suppress(AttributeError):
            # Changes made by other processes (the CLI) reach the recipient index.
            await self._store.db.start_change_feed()
        await self._delivery.recover()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, self._host, self._port)
        return [(str(s.getsockname()[0]), int(s.getsockname()[1])) for s in self._server.sockets]

    async def stop(self, grace: float) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        if self._server is not None:
            self._server.close()
            await self._sessions.drain(grace)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None
        await self._inflight.drain(max(0.0, grace - (loop.time() - started)))
        self._recipients.close()


def build_inbound(ctx: ServerContext) -> list[Server]:
    """The MX listener, when ``[mail.inbound] smtp_listen`` is set."""
    config = inbound_config(ctx)
    if config.smtp_listen is None:
        return []
    mailboxes = shared_mailboxes(ctx)
    metrics = ctx.extras.get(METRICS_EXTRA)
    if not isinstance(metrics, InboundMetrics):
        metrics = InboundMetrics(ctx.metrics.registry)
        ctx.extras[METRICS_EXTRA] = metrics
    journal = Journal(maildir_root(ctx, config) / ".journal")
    delivery = MaildirDelivery(mailboxes, journal)
    recipients = RecipientIndex(ctx.store)
    inflight = InFlight("mail-inbound")
    forwarder: Forwarder | None = ctx.extras.get(FORWARDER_EXTRA)
    handler = InboundHandler(
        hostname=ctx.config.mail.hostname,
        limits=InboundLimits(
            max_recipients=config.max_recipients, max_header_bytes=config.max_header_bytes,
            max_header_fields=MAX_HEADER_FIELDS, default_quota=config.default_quota,
        ),
        recipients=recipients,
        dnsbl=Dnsbl(config.dnsbl_zones, nameserver=config.dns_nameserver, port=config.dns_port,
                    timeout=config.dns_timeout),
        mailboxes=mailboxes, delivery=delivery, inflight=inflight, metrics=metrics,
        forwarder=forwarder,
    )
    options = {
        "hostname": ctx.config.mail.hostname,
        "ident": IDENT,
        "data_size_limit": config.max_message_size,
        "timeout": config.smtp_timeout,
        "auth_require_tls": False,
    }
    listen = config.smtp_listen
    return [InboundSmtpServer(
        "mail-inbound", listen.host, listen.port, handler=handler, delivery=delivery,
        recipients=recipients, inflight=inflight, options=options, store=ctx.store,
    )]
