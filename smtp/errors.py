"""Why the relay refuses a submission, as types; ``answers.py`` turns each into its reply.

The reason travels to the client in the reply text where it helps the sender fix the
message (which address was refused, which limit was hit) and never carries a secret.
"""

from __future__ import annotations


class SubmissionRefused(Exception):
    """Base of every refusal the handler answers from the table."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotAuthenticated(SubmissionRefused):
    """MAIL before a successful AUTH: this relay only relays for logins."""


class SenderNotAllowed(SubmissionRefused):
    """The envelope sender is not an address the login may use."""


class HeaderSenderNotAllowed(SubmissionRefused):
    """A header From or Sender address is not one the login may use."""


class OutboundDisabled(SubmissionRefused):
    """The sender's domain has its relay set to ``noop``: no mail leaves for it."""


class BadRecipient(SubmissionRefused):
    """A recipient that is not a deliverable address (no domain, bad syntax)."""


class TooManyRecipients(SubmissionRefused):
    """More recipients than ``max_recipients`` in one transaction."""


class HeaderTooBig(SubmissionRefused):
    """A header section past the configured size or field count (a header bomb)."""


class MalformedMessage(SubmissionRefused):
    """A message whose header section cannot be read (no From address, bad folding…)."""


class SpoolFull(SubmissionRefused):
    """The spool's disk is full: nothing was kept, the client may try again later."""


class SpoolFailed(SubmissionRefused):
    """The spool could not be written for another reason: nothing kept, try later."""
