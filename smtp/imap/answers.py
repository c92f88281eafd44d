"""The one table from a failed IMAP login to its answer (RFC 5530 response codes).

Every refused secret gets the same ``NO [AUTHENTICATIONFAILED]`` whatever the reason (the
audit log has the reason); a rate-limit refusal gets the door's "try later" from
``ratelimit/answers.py``; a store outage or a bug gets ``NO [UNAVAILABLE]``. Never the
exception's text: Twisted's own ``__ebLogin`` sends ``str(failure.value)`` to the client.
"""

from __future__ import annotations

import logging

from gateway.auth import AuthUnavailable, LoginFailed, RateLimited
from ratelimit.answers import try_later

log = logging.getLogger(__name__)

AUTH_FAILED = b"[AUTHENTICATIONFAILED] Authentication failed"
UNAVAILABLE = b"[UNAVAILABLE] Temporary authentication failure, try again later"


def login_refusal(error: BaseException) -> bytes:
    """The text after ``<tag> NO`` for a login that did not succeed."""
    if isinstance(error, RateLimited):
        later = try_later("imap", error.retry_after)
        return later.text.encode()
    if isinstance(error, LoginFailed):
        return AUTH_FAILED
    if isinstance(error, AuthUnavailable):
        log.warning("IMAP login: credential check unavailable: %s", error)
        return UNAVAILABLE
    log.error("IMAP login failed on an unexpected error", exc_info=error)
    return UNAVAILABLE
