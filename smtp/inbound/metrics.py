"""Prometheus collectors of inbound mail and the mailbox servers (``metrics.registry``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class InboundMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "gateway_mail_inbound_messages",
            "Messages offered to inbound SMTP, by result (accepted or the reply code).",
            ["result"],
            registry=registry,
        )
        self.recipients = Counter(
            "gateway_mail_inbound_recipients",
            "Recipients offered at RCPT, by result (accepted or the reply code).",
            ["result"],
            registry=registry,
        )
        self.sessions = Counter(
            "gateway_mail_reader_logins",
            "IMAP and POP3 logins, by door and result.",
            ["door", "result"],
            registry=registry,
        )
