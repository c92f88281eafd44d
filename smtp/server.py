"""The mail servers: inbound SMTP, IMAP, POP3, the outbound queue and three submission ports.

``build(ctx)`` is what the runtime imports when ``[mail] enabled = true``. The queue starts
first (it resumes what the spool holds) and stops last, so no listener ever hands a message
to a stopped queue. Listeners are aiosmtpd protocols on the shared loop
(``loop.create_server``), never aiosmtpd's Controller, which runs a loop of its own.

- app (Cloudron's 2525): no TLS and no STARTTLS, AUTH in clear on the apps' network, for
  apps that cannot do TLS;
- tls (2465): implicit TLS from the first byte (RFC 8314);
- starttls (587 for people): nothing but EHLO and STARTTLS before TLS (RFC 3207 §4), so
  AUTH only ever happens encrypted.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from gateway.config import Config
from gateway.config.mail import MailConfig
from gateway.runtime.server import Address, Server, ServerContext
from smtp.auth import SmtpLogin
from smtp.delivery import Deliverer, DeliverySettings
from smtp.domains import DomainIndex
from smtp.handler import SubmissionHandler, SubmissionLimits
from smtp.imap.server import build_imap
from smtp.inbound.server import FORWARDER_EXTRA, InboundSmtpServer, build_inbound
from smtp.metrics import MailMetrics
from smtp.outbox import ListForwarder, Outbox
from smtp.pop3.server import build_pop3
from smtp.queue import DeliveryQueue, RetrySchedule
from smtp.resolver import MxResolver
from smtp.routes import LocalRoute, Router
from smtp.senders import SenderPolicy
from smtp.session import ConnectionLimiter, NoConnectionLimit, OpenSessions, SubmissionProtocol
from smtp.spool import Spool
from smtp.tls import ensure_self_signed, server_context

log = logging.getLogger(__name__)

Mode = Literal["plain", "implicit", "starttls"]
IDENT = "ESMTP gateway"
# Per connection: a few AUTH tries (the rate limiter counts across connections); the other
# commands unbounded, since one connection may carry many messages.
CALL_LIMITS = {"AUTH": 5, "*": 1_000_000}
LIMITER_EXTRA = "mail_connection_limiter"


class MailQueueServer:
    """The outbound queue as a runtime server: no socket, a lifetime."""

    def __init__(self, queue: DeliveryQueue, domains: DomainIndex) -> None:
        self.name = "mail-queue"
        self.queue = queue
        self._domains = domains

    async def start(self) -> list[Address]:
        await self.queue.start()
        return []

    async def stop(self, grace: float) -> None:
        try:
            await self.queue.stop(grace)
        finally:
            self._domains.close()


class SubmissionServer:
    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        mode: Mode,
        handler_for: Callable[[], SubmissionHandler],
        tls: ssl.SSLContext | None,
        config: MailConfig,
        limiter: ConnectionLimiter,
    ) -> None:
        self.name = name
        self._host = host
        self._port = port
        self._mode = mode
        self._handler = handler_for()
        self._tls = tls
        self._config = config
        self._limiter = limiter
        self._sessions = OpenSessions()
        self._server: asyncio.Server | None = None

    def _protocol(self) -> SubmissionProtocol:
        sub = self._config.submission
        options: dict[str, Any] = {
            "hostname": self._config.hostname,
            "ident": IDENT,
            "data_size_limit": sub.max_message_size,
            "timeout": sub.timeout,
            "command_call_limit": CALL_LIMITS,
            "loop": asyncio.get_running_loop(),
        }
        if self._mode == "starttls":
            options.update(tls_context=self._tls, require_starttls=True, auth_require_tls=True)
        else:
            # plain: Cloudron compatibility; implicit: the transport is already TLS, which
            # aiosmtpd's STARTTLS bookkeeping does not see.
            options.update(auth_require_tls=False)
        return SubmissionProtocol(
            self._handler, sessions=self._sessions, limiter=self._limiter, **options
        )

    async def start(self) -> list[Address]:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, self._host, self._port,
            ssl=self._tls if self._mode == "implicit" else None,
        )
        return [(str(s.getsockname()[0]), int(s.getsockname()[1])) for s in self._server.sockets]

    async def stop(self, grace: float) -> None:
        if self._server is None:
            return
        self._server.close()
        await self._sessions.drain(grace)
        try:
            await asyncio.wait_for(self._server.wait_closed(), 1.0)
        except TimeoutError:
            log.warning("%s: connections still closing after the grace", self.name)
        self._server = None


def spool_path(config: Config) -> Path:
    path = config.mail.queue.spool_dir
    return path if path.is_absolute() else config.runtime.data_dir / path


def _tls_context(config: Config) -> ssl.SSLContext:
    sub = config.mail.submission
    if sub.tls_cert is not None and sub.tls_key is not None:
        return server_context(sub.tls_cert, sub.tls_key)
    cert, key = ensure_self_signed(spool_path(config).parent / "tls", config.mail.hostname)
    return server_context(cert, key)


def build_queue(
    ctx: ServerContext, metrics: MailMetrics, domains: DomainIndex,
    clock: Callable[[], float] = time.time,
    local: Callable[[], LocalRoute | None] | None = None,
) -> DeliveryQueue:
    cfg = ctx.config.mail
    d = cfg.delivery
    resolver = MxResolver(nameserver=d.dns_nameserver, port=d.dns_port, timeout=d.dns_timeout)
    deliverer = Deliverer(
        DeliverySettings(
            hostname=cfg.hostname, port=d.port, connect_timeout=d.connect_timeout,
            command_timeout=d.command_timeout, verify_mx_certificates=d.verify_mx_certificates,
        ),
        resolver,
    )
    q = cfg.queue
    return DeliveryQueue(
        Spool(spool_path(ctx.config)), Router(domains, local=local), deliverer,
        RetrySchedule(q.retry_initial, q.retry_max, q.lifetime),
        hostname=cfg.hostname, concurrency=q.concurrency, metrics=metrics, audit=ctx.audit,
        clock=clock, scan_interval=min(5.0, max(0.05, q.retry_initial)),
    )


def build(ctx: ServerContext) -> list[Server]:
    """Inbound SMTP, IMAP and POP3, the queue, then one submission server per listener."""
    cfg = ctx.config.mail
    metrics = MailMetrics(ctx.metrics.registry)
    domains = DomainIndex(ctx.store)
    forwarder = ListForwarder()
    ctx.extras.setdefault(FORWARDER_EXTRA, forwarder)
    inbound = build_inbound(ctx)
    queue = build_queue(ctx, metrics, domains, local=_local_route(inbound))
    outbox = forwarder.outbox = Outbox(queue, domains)
    policy = SenderPolicy(ctx.store, domains)
    smtp_login = SmtpLogin(ctx.portal, ctx.store)
    limiter: ConnectionLimiter = ctx.extras.get(LIMITER_EXTRA) or NoConnectionLimit()
    sub = cfg.submission
    limits = SubmissionLimits(sub.max_recipients, sub.max_header_bytes, sub.max_header_fields)
    listeners: list[tuple[str, Mode, Any]] = [
        ("app", "plain", sub.app_listen),
        ("tls", "implicit", sub.tls_listen),
        ("starttls", "starttls", sub.starttls_listen),
    ]
    tls = _tls_context(ctx.config) if sub.tls_listen or sub.starttls_listen else None
    # Mailboxes first (the queue delivers local mail to them), then the queue, then the
    # submission listeners that feed it; the runtime stops them in reverse.
    servers: list[Server] = [
        *inbound, *build_imap(ctx), *build_pop3(ctx), MailQueueServer(queue, domains),
    ]
    for port_name, mode, address in listeners:
        if address is None:
            continue

        def handler_for(port_name: str = port_name) -> SubmissionHandler:
            return SubmissionHandler(
                port_name=port_name, hostname=cfg.hostname, limits=limits,
                smtp_login=smtp_login, policy=policy, outbox=outbox, audit=ctx.audit,
                metrics=metrics,
            )

        servers.append(SubmissionServer(
            f"mail-submission-{port_name}", address.host, address.port, mode=mode,
            handler_for=handler_for, tls=tls if mode != "plain" else None, config=cfg,
            limiter=limiter,
        ))
    return servers


def _local_route(inbound: list[Server]) -> Callable[[], LocalRoute | None]:
    """Mail for the domains we receive goes to our own inbound listener, so it meets the
    same recipient checks, quota and Maildir delivery as mail from outside."""
    listener = next((s for s in inbound if isinstance(s, InboundSmtpServer)), None)

    def current() -> LocalRoute | None:
        address = listener.address if listener is not None else None
        return LocalRoute(*address) if address is not None else None

    return current
