"""Prometheus collectors of the mail relay, on the process's registry (``metrics.registry``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class MailMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.submissions = Counter(
            "gateway_mail_submissions",
            "Messages offered on a submission port, by port and result (accepted or the "
            "refusal's reply code).",
            ["port", "result"],
            registry=registry,
        )
        self.deliveries = Counter(
            "gateway_mail_deliveries",
            "Delivery outcomes per recipient: delivered, deferred or failed.",
            ["result"],
            registry=registry,
        )
        self.bounces = Counter(
            "gateway_mail_bounces", "Bounces (DSNs) queued to senders.", registry=registry
        )
        self.queued = Gauge(
            "gateway_mail_queue_messages", "Messages in the outbound queue.", registry=registry
        )
        self.delivery_seconds = Histogram(
            "gateway_mail_delivery_seconds",
            "Time of one delivery attempt to one route.",
            buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120),
            registry=registry,
        )
