"""Why the wall did not pass a request on, as types; ``answers.py`` turns each into HTTP.

Handlers raise these and never build error responses themselves, so a status code, a page
and a header such as ``Retry-After`` are decided in one table.
"""

from __future__ import annotations


class WallError(Exception):
    """Base of every refusal the wall answers itself."""


class SignInRequired(WallError):
    """No valid session (or Basic credentials) for a walled path.

    ``target`` is the same-origin path to come back to after login. ``api`` clients get a
    401 instead of a redirect (SPEC.md: Cloudron's 302 to API clients is a known pain);
    ``basic_realm`` is set when the app takes Basic credentials, so the 401 says so.
    """

    def __init__(self, target: str, *, api: bool, basic_realm: str | None) -> None:
        super().__init__(target)
        self.target = target
        self.api = api
        self.basic_realm = basic_realm


class AccessDenied(WallError):
    """A signed-in user who may not use this app: a 403 page, never a redirect loop."""

    def __init__(self, who: str) -> None:
        super().__init__(who)
        self.who = who


class TooManyAttempts(WallError):
    """The credential check or the form's own rate said "later"."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after:.0f}s")
        self.retry_after = retry_after


class CheckUnavailable(WallError):
    """The store or the policy could not answer a credential check."""


class UnknownHost(WallError):
    """No app is installed at the requested host."""

    def __init__(self, host: str) -> None:
        super().__init__(host)
        self.host = host


class MalformedRequest(WallError):
    """A request the wall refuses to interpret (a path it cannot normalise, a bad header)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class BodyTooLarge(WallError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


class UpstreamUnavailable(WallError):
    """The app did not answer: not running, refused, or too slow.

    ``kind`` is one of ``not_running`` (no upstream address), ``refused``, ``timeout``,
    ``broken`` (the connection failed mid-answer, before anything was sent to the client).
    """

    def __init__(self, app: str, kind: str) -> None:
        super().__init__(f"{app}: {kind}")
        self.app = app
        self.kind = kind


class UntrustedCaller(WallError):
    """The forward-auth endpoint was called by a peer outside ``trusted_proxies``."""

    def __init__(self, peer: str) -> None:
        super().__init__(peer)
        self.peer = peer
