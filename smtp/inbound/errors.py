"""Why inbound SMTP refuses a sender, a recipient or a message; ``answers.py`` has the replies."""

from __future__ import annotations


class InboundRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Blocklisted(InboundRefused):
    """The connecting address is on a configured DNS blocklist."""


class RelayDenied(InboundRefused):
    """The recipient's domain is not one this server receives mail for."""


class UnknownRecipient(InboundRefused):
    """No mailbox, alias, list or catch-all takes this address."""


class BadAddress(InboundRefused):
    """Not a ``local@domain`` address."""


class TooManyRecipients(InboundRefused):
    pass


class MailboxFull(InboundRefused):
    """The mailbox is at its quota, or this message would take it past."""


class MessageTooBig(InboundRefused):
    """Larger than ``max_message_size`` (declared with SIZE, or sent)."""


class HeaderTooBig(InboundRefused):
    """A header section past the size or field limits (a header bomb)."""


class MalformedMessage(InboundRefused):
    """A header section we cannot read."""


class StorageFull(InboundRefused):
    """The disk is full: nothing was kept; the sender keeps the message and retries."""


class StorageFailed(InboundRefused):
    """Writing the message failed otherwise: nothing kept, try later."""
