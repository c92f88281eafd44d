"""The one table from a failed POP3 login to its answer (RFC 2449/3206 response codes)."""

from __future__ import annotations

import logging

from gateway.auth import AuthUnavailable, LoginFailed, RateLimited
from ratelimit.answers import try_later

log = logging.getLogger(__name__)

AUTH_FAILED = b"[AUTH] Authentication failed"
TEMPORARY = b"[SYS/TEMP] Temporary authentication failure, try again later"


def login_refusal(error: BaseException) -> bytes:
    """The text after ``-ERR``; never the exception's own text."""
    if isinstance(error, RateLimited):
        return try_later("pop3", error.retry_after).text.encode()
    if isinstance(error, LoginFailed):
        return AUTH_FAILED
    if isinstance(error, AuthUnavailable):
        log.warning("POP3 login: credential check unavailable: %s", error)
        return TEMPORARY
    log.error("POP3 login failed on an unexpected error", exc_info=error)
    return TEMPORARY
