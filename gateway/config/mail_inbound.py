"""The [mail.inbound] table: inbound SMTP, the Maildir mailboxes, IMAP and POP3.

Listen addresses default to unprivileged loopback ports; production maps the public ports
onto them (25 → 2526, 993 → 9993, 995 → 9995) and hands apps the internal ones through the
recvmail/email env. Every listener may be turned off by leaving it empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import gateway.config.model as model
from gateway.config.fields import doc


def _listen(port: int) -> model.ListenAddress:
    return model.ListenAddress("127.0.0.1", port)


@dataclass(frozen=True)
class InboundMailConfig:
    smtp_listen: model.ListenAddress | None = field(
        default_factory=lambda: _listen(2526),
        metadata=doc(
            "Inbound SMTP for the hosted domains (the MX; public port 25 maps here). "
            "Empty: off."
        ),
    )
    imap_listen: model.ListenAddress | None = field(
        default_factory=lambda: _listen(9143),
        metadata=doc(
            "IMAP without TLS, for apps on the private network (CLOUDRON_MAIL_IMAP_PORT). "
            "Empty: off."
        ),
    )
    imaps_listen: model.ListenAddress | None = field(
        default_factory=lambda: _listen(9993),
        metadata=doc("IMAP over implicit TLS (RFC 8314; public 993). Empty: off."),
    )
    pop3_listen: model.ListenAddress | None = field(
        default_factory=lambda: _listen(9110),
        metadata=doc("POP3 without TLS, for apps (CLOUDRON_MAIL_POP3_PORT). Empty: off."),
    )
    pop3s_listen: model.ListenAddress | None = field(
        default_factory=lambda: _listen(9995),
        metadata=doc("POP3 over implicit TLS (public 995). Empty: off."),
    )
    tls_cert: Path | None = field(
        default=None,
        metadata=doc(
            "PEM certificate chain for IMAPS and POP3S. Unset: the relay's certificate "
            "(mail.submission.tls_cert), else a self-signed one made under maildir_root."
        ),
    )
    tls_key: Path | None = field(default=None, metadata=doc("PEM private key of tls_cert."))
    maildir_root: Path = field(
        default=Path("mail/boxes"),
        metadata=doc(
            "Where mailboxes live, one Maildir per address as DOMAIN/LOCAL (relative: to "
            "runtime.data_dir). Also holds the inbound journal that makes delivery "
            "crash-safe."
        ),
    )
    dnsbl_zones: list[str] = field(
        default_factory=list,
        metadata=doc(
            "DNS blocklists asked about each connecting address (e.g. zen.spamhaus.org); "
            "a listed sender is refused with 554 5.7.1. Empty: no lookups."
        ),
    )
    dns_nameserver: str | None = field(
        default=None,
        metadata=doc(
            "Ask this name server (an IP address) for DNSBL answers instead of the "
            "system's. Blocklists refuse queries from big public resolvers."
        ),
    )
    dns_port: int = field(default=53, metadata=doc("Port of dns_nameserver.", min=1, max=65535))
    dns_timeout: float = field(
        default=5.0,
        metadata=doc(
            "Seconds one DNSBL lookup may take; a lookup that fails or times out lets the "
            "mail in (a blocklist outage must not stop all mail).",
            min=0.1,
            max=60.0,
        ),
    )
    default_quota: int = field(
        default=0,
        metadata=doc(
            "Bytes a mailbox may hold when its own quota_bytes is 0. 0: no limit.", min=0
        ),
    )
    max_message_size: int = field(
        default=26_214_400,
        metadata=doc(
            "Largest message accepted over SMTP or APPEND, bytes (EHLO SIZE, RFC 1870). "
            "25 MiB, as the submission side.",
            min=1024,
            max=1_073_741_824,
        ),
    )
    max_recipients: int = field(
        default=100,
        metadata=doc("Recipients per message (RFC 5321 §4.5.3.1.8: at least 100).", min=1),
    )
    max_header_bytes: int = field(
        default=262_144,
        metadata=doc("Largest header section accepted; past it 552 5.3.4.", min=1024),
    )
    smtp_timeout: float = field(
        default=300.0,
        metadata=doc(
            "Seconds an SMTP client may stay silent (RFC 5321 §4.5.3.2.7: 5 minutes).",
            min=1.0,
            max=3600.0,
        ),
    )
    imap_idle_timeout: float = field(
        default=1800.0,
        metadata=doc(
            "Seconds a logged-in IMAP client may stay silent (RFC 3501 §5.4: at least 30 "
            "minutes); before login it is 60 s.",
            min=60.0,
            max=86_400.0,
        ),
    )
    idle_poll: float = field(
        default=2.0,
        metadata=doc(
            "During IMAP IDLE, how often (seconds) the Maildir is re-read for changes made "
            "by other processes; deliveries by this process are announced at once.",
            min=0.05,
            max=60.0,
        ),
    )
