"""The [mail] section: submission, queue, delivery, inbound SMTP, IMAP and POP3."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.config.fields import doc


@dataclass(frozen=True)
class MailConfig:
    enabled: bool = field(default=False, metadata=doc("Serve the mail relay."))
