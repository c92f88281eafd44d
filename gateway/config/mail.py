"""The [mail] section: submission, queue, delivery, inbound SMTP, IMAP and POP3.

The outbound relay's keys are grouped in three tables: ``[mail.submission]`` (the ports apps
and people send through), ``[mail.queue]`` (the durable spool and its retry schedule) and
``[mail.delivery]`` (how the queue reaches other servers). Inbound SMTP, IMAP and POP3 get
tables of their own beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# model.py imports this module before it defines ListenAddress, so the name is reached
# through the module object (bound at once, read only when a default or a hint is needed).
import gateway.config.model as model
from gateway.config.fields import doc
from gateway.config.mail_inbound import InboundMailConfig


def _listen(port: int) -> model.ListenAddress:
    return model.ListenAddress("127.0.0.1", port)


@dataclass(frozen=True)
class SubmissionConfig:
    app_listen: model.ListenAddress | None = field(
        default_factory=lambda: _listen(2525),
        metadata=doc(
            "The apps' plain port (CLOUDRON_MAIL_SMTP_PORT): AUTH without TLS and no "
            "STARTTLS, as Cloudron's 2525, so apps that cannot do TLS still send. Keep it on "
            "the apps' private network. Empty: off."
        ),
    )
    tls_listen: model.ListenAddress | None = field(
        default_factory=lambda: _listen(2465),
        metadata=doc(
            "Implicit-TLS submission (CLOUDRON_MAIL_SMTPS_PORT, RFC 8314 §3.3). Empty: off."
        ),
    )
    starttls_listen: model.ListenAddress | None = field(
        default_factory=lambda: _listen(2587),
        metadata=doc(
            "People's submission (RFC 6409, port 587 in production): nothing but EHLO and "
            "STARTTLS before TLS, so no password ever crosses in clear. Empty: off."
        ),
    )
    tls_cert: Path | None = field(
        default=None,
        metadata=doc(
            "PEM certificate chain for the TLS ports. Unset: a self-signed certificate for "
            "mail.hostname is generated under the spool directory (development only; apps "
            "must accept self-signed certificates, as on Cloudron)."
        ),
    )
    tls_key: Path | None = field(
        default=None, metadata=doc("PEM private key of tls_cert.")
    )
    max_message_size: int = field(
        default=26_214_400,
        metadata=doc(
            "Largest message accepted, bytes, announced as EHLO SIZE (RFC 1870). 25 MiB "
            "as Haraka; Postfix uses 10240000.",
            min=1024,
            max=1_073_741_824,
        ),
    )
    max_recipients: int = field(
        default=100,
        metadata=doc(
            "Recipients per message; more get 452 4.5.3. RFC 5321 §4.5.3.1.8 asks servers "
            "to accept at least 100.",
            min=1,
            max=10_000,
        ),
    )
    max_header_bytes: int = field(
        default=262_144,
        metadata=doc(
            "Largest header section accepted, bytes; a header bomb past it gets 552 5.3.4.",
            min=1024,
            max=16_777_216,
        ),
    )
    max_header_fields: int = field(
        default=1000,
        metadata=doc("Most header fields in one message (552 5.3.4 past it).", min=10),
    )
    timeout: float = field(
        default=300.0,
        metadata=doc(
            "Seconds a client may stay silent before the session is closed (RFC 5321 "
            "§4.5.3.2.7: at least 5 minutes).",
            min=1.0,
            max=3600.0,
        ),
    )


@dataclass(frozen=True)
class QueueConfig:
    spool_dir: Path = field(
        default=Path("mail/spool"),
        metadata=doc(
            "Where accepted messages wait for delivery (relative: to runtime.data_dir). "
            "Every message is written and fsync'd here before the 250 reply."
        ),
    )
    retry_initial: float = field(
        default=300.0,
        metadata=doc(
            "Seconds before the first retry after a temporary failure; each retry doubles "
            "it (Postfix minimal_backoff_time 300 s).",
            min=0.01,
            max=86_400.0,
        ),
    )
    retry_max: float = field(
        default=4000.0,
        metadata=doc(
            "Longest wait between two retries, seconds (Postfix maximal_backoff_time 4000 s).",
            min=0.01,
            max=86_400.0,
        ),
    )
    lifetime: float = field(
        default=432_000.0,
        metadata=doc(
            "Seconds a message keeps being retried before the sender gets a bounce (DSN) "
            "for the recipients still not reached (Postfix maximal_queue_lifetime 5 days).",
            min=0.01,
            max=8_640_000.0,
        ),
    )
    concurrency: int = field(
        default=20,
        metadata=doc("Deliveries under way at once.", min=1, max=1000),
    )


@dataclass(frozen=True)
class DeliveryConfig:
    port: int = field(
        default=25,
        metadata=doc(
            "Port of the recipients' MX hosts. Only tests and benches change it, to reach a "
            "receiving server on loopback.",
            min=1,
            max=65535,
        ),
    )
    dns_nameserver: str | None = field(
        default=None,
        metadata=doc(
            "Ask this name server (an IP address) for MX records instead of the system's "
            "(/etc/resolv.conf)."
        ),
    )
    dns_port: int = field(
        default=53, metadata=doc("Port of dns_nameserver.", min=1, max=65535)
    )
    dns_timeout: float = field(
        default=10.0,
        metadata=doc("Seconds one DNS lookup may take; then the try is deferred.", min=0.1),
    )
    connect_timeout: float = field(
        default=30.0,
        metadata=doc("Seconds to connect to one MX or smarthost.", min=0.1, max=600.0),
    )
    command_timeout: float = field(
        default=300.0,
        metadata=doc(
            "Seconds to wait for one reply (RFC 5321 §4.5.3.2: 5 minutes for MAIL/RCPT, "
            "10 for the end of DATA: this value, doubled).",
            min=0.1,
            max=3600.0,
        ),
    )
    verify_mx_certificates: bool = field(
        default=False,
        metadata=doc(
            "Refuse an MX whose STARTTLS certificate does not verify. Off: opportunistic "
            "TLS (RFC 3207 §4), as most MTAs do on port 25."
        ),
    )


@dataclass(frozen=True)
class MailConfig:
    enabled: bool = field(default=True, metadata=doc("Serve the mail relay."))
    hostname: str = field(
        default="localhost",
        metadata=doc(
            "This mail server's name: greeting, EHLO to other servers, Received headers, "
            "Message-IDs, bounces, and the self-signed certificate."
        ),
    )
    submission: SubmissionConfig = field(default_factory=SubmissionConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    inbound: InboundMailConfig = field(default_factory=InboundMailConfig)
