"""Why a login failed, as a small typed tree (after twisted.cred.error).

Doors map these to their protocol's answer through one table each; the reason goes to the
audit log, never to the client beyond what the protocol's standard answer says.
"""

from __future__ import annotations


class LoginFailed(Exception):
    """Base of every refused login. ``reason`` is for the audit log."""

    reason = "failed"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail
        super().__init__(detail or self.reason)


class UnknownAccount(LoginFailed):
    reason = "unknown"


class BadCredentials(LoginFailed):
    reason = "wrong_secret"


class NoAccess(LoginFailed):
    """The secret was right, but this user may not use this app."""

    reason = "no_access"


class Inactive(LoginFailed):
    reason = "inactive"


class TwoFactorRequired(LoginFailed):
    """The password was right; the door must ask for the TOTP code next."""

    reason = "2fa_required"


class RateLimited(LoginFailed):
    """Too many attempts: the door answers its protocol's "try later"."""

    reason = "rate_limited"

    def __init__(self, retry_after: float, scope: str, detail: str | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.scope = scope


class Locked(RateLimited):
    """A temporary ban on the source or the account."""

    reason = "locked"


class UnhandledCredentials(Exception):
    """No checker for this kind of credential: a server bug, not a failed login."""


class AuthUnavailable(Exception):
    """The store or the policy could not answer: the door answers a temporary error."""
