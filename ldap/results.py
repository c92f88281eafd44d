"""The one table from failures to LDAP result codes.

Directory refusals and the portal's typed login failures meet here, so every door of this
server answers the same thing for the same cause. SPEC.md: unknown user and no access are
both noSuchObject (32), so a search-then-bind client cannot tell who exists for other apps;
a wrong secret is 49; "try later" is busy (51). Anything not in the table is a bug or an
outage: it is logged by the caller and answered ``other`` (80), never success.
"""

from __future__ import annotations

from gateway.auth import (
    AuthUnavailable,
    BadCredentials,
    Inactive,
    LoginFailed,
    NoAccess,
    RateLimited,
    TwoFactorRequired,
    UnhandledCredentials,
    UnknownAccount,
)
from ldap import errors
from ldap.wire import ResultCode

RESULT_OF: dict[type[BaseException], ResultCode] = {
    errors.NoSuchObject: ResultCode.NO_SUCH_OBJECT,
    errors.InsufficientAccess: ResultCode.INSUFFICIENT_ACCESS_RIGHTS,
    errors.UnwillingToPerform: ResultCode.UNWILLING_TO_PERFORM,
    errors.ProtocolError: ResultCode.PROTOCOL_ERROR,
    errors.InvalidDN: ResultCode.INVALID_DN_SYNTAX,
    errors.AuthMethodNotSupported: ResultCode.AUTH_METHOD_NOT_SUPPORTED,
    errors.UnavailableCriticalExtension: ResultCode.UNAVAILABLE_CRITICAL_EXTENSION,
    errors.ConfidentialityRequired: ResultCode.CONFIDENTIALITY_REQUIRED,
    errors.AdminLimitExceeded: ResultCode.ADMIN_LIMIT_EXCEEDED,
    errors.SizeLimitExceeded: ResultCode.SIZE_LIMIT_EXCEEDED,
    errors.TimeLimitExceeded: ResultCode.TIME_LIMIT_EXCEEDED,
    errors.Busy: ResultCode.BUSY,
    # The portal's answers (gateway/auth/errors.py).
    UnknownAccount: ResultCode.NO_SUCH_OBJECT,
    NoAccess: ResultCode.NO_SUCH_OBJECT,
    Inactive: ResultCode.NO_SUCH_OBJECT,
    BadCredentials: ResultCode.INVALID_CREDENTIALS,
    TwoFactorRequired: ResultCode.INVALID_CREDENTIALS,
    RateLimited: ResultCode.BUSY,
    LoginFailed: ResultCode.INVALID_CREDENTIALS,
    AuthUnavailable: ResultCode.BUSY,
    UnhandledCredentials: ResultCode.OTHER,
}

# What the client reads for a login failure: the protocol's standard words, never the
# audit reason (which may say "no access" where the code deliberately says "no such object").
_LOGIN_MESSAGES: dict[ResultCode, str] = {
    ResultCode.NO_SUCH_OBJECT: "",
    ResultCode.INVALID_CREDENTIALS: "",
    ResultCode.BUSY: "too many attempts or the directory is busy; try again later",
    ResultCode.OTHER: "internal error",
}


def result_for(exc: BaseException) -> ResultCode | None:
    """The code for ``exc`` (most specific class first), or None when it is unexpected."""
    for cls in type(exc).__mro__:
        code = RESULT_OF.get(cls)
        if code is not None:
            return code
    return None


def message_for(exc: BaseException, code: ResultCode) -> str:
    if isinstance(exc, errors.DirectoryError):
        return exc.message
    return _LOGIN_MESSAGES.get(code, "")
