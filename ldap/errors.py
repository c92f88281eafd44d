"""What can go wrong answering an LDAP request, as types. ``ldap.results`` maps each one
(and the portal's login failures) to its result code, in one table.
"""

from __future__ import annotations


class DirectoryError(Exception):
    """Base of the refusals this server answers with a result code and a message.

    ``matched_dn`` is the deepest existing entry above a missing one (RFC 4511 4.1.9).
    """

    def __init__(self, message: str = "", matched_dn: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.matched_dn = matched_dn


class NoSuchObject(DirectoryError):
    pass


class InsufficientAccess(DirectoryError):
    pass


class UnwillingToPerform(DirectoryError):
    pass


class ProtocolError(DirectoryError):
    pass


class InvalidDN(DirectoryError):
    pass


class AuthMethodNotSupported(DirectoryError):
    pass


class UnavailableCriticalExtension(DirectoryError):
    pass


class ConfidentialityRequired(DirectoryError):
    pass


class AdminLimitExceeded(DirectoryError):
    pass


class SizeLimitExceeded(DirectoryError):
    pass


class TimeLimitExceeded(DirectoryError):
    pass


class Busy(DirectoryError):
    pass


class MalformedRequest(Exception):
    """Bytes that are not an LDAP request: answered with a Notice of Disconnection.

    ``message_id`` and ``op`` are set when the envelope could be read, so the request can be
    answered in its own terms instead (for example a filter nested too deep).
    """

    def __init__(
        self,
        reason: str,
        *,
        message_id: int | None = None,
        op: int | None = None,
        error: DirectoryError | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message_id = message_id
        self.op = op
        self.error = error
