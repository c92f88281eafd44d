"""The one table from the wall's refusals (``errors.py``) to HTTP answers.

Browsers get a page, API clients (``gate.wants_api``) a small JSON body; the status and the
headers are the same for both. The forward-auth endpoint answers through the same table;
its ``nginx`` flavour turns "sign in" into a 401 carrying the login URL in
``X-Gateway-Login``, because nginx's ``auth_request`` treats anything but 2xx, 401 and 403
from the check as a server error and cannot follow a redirect.
"""

from __future__ import annotations

import json
import math
from typing import Literal
from urllib.parse import quote

from aiohttp import web

from proxyauth.errors import (
    AccessDenied,
    BodyTooLarge,
    CheckUnavailable,
    MalformedRequest,
    SignInRequired,
    TooManyAttempts,
    UnknownHost,
    UntrustedCaller,
    UpstreamUnavailable,
    WallError,
)
from proxyauth.pages import Pages
from ratelimit.answers import retry_seconds

Flavour = Literal["wall", "forward", "nginx"]
LOGIN_HEADER = "X-Gateway-Login"
# A failed store or policy usually recovers within seconds.
UNAVAILABLE_RETRY = 5


def retry_after(seconds: float) -> str:
    """``Retry-After`` as every door rounds it (the suite-wide table in ratelimit)."""
    return str(retry_seconds(seconds))


def login_url(target: str) -> str:
    return "/login?redirect=" + quote(target, safe="/")


def _plain_wait(seconds: float) -> str:
    whole = max(1, math.ceil(seconds))
    if whole < 90:
        return f"{whole} seconds"
    return f"{math.ceil(whole / 60)} minutes"


def _json(status: int, body: dict[str, object], headers: dict[str, str]) -> web.Response:
    response = web.Response(
        text=json.dumps(body), status=status, content_type="application/json",
        headers=headers,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def answer(
    error: WallError, pages: Pages, *, api: bool, host: str, flavour: Flavour = "wall"
) -> web.Response:
    if isinstance(error, SignInRequired):
        return _sign_in(error, pages, host=host, flavour=flavour)
    status, headers, heading, message = _row(error, host)
    if api or flavour == "nginx":
        return _json(status, {"error": heading, "detail": message}, headers)
    return pages.render(
        "error.html", status=status, headers=headers, heading=heading, message=message,
        host=host, signed_in_as=error.who if isinstance(error, AccessDenied) else None,
    )


def _row(error: WallError, host: str) -> tuple[int, dict[str, str], str, str]:
    """status, headers, heading, message: the table."""
    if isinstance(error, AccessDenied):
        return 403, {}, "No access", f"This account may not use {host}. Ask an administrator."
    if isinstance(error, TooManyAttempts):
        return (
            429, {"Retry-After": retry_after(error.retry_after)}, "Too many attempts",
            f"Please wait {_plain_wait(error.retry_after)} before trying again.",
        )
    if isinstance(error, CheckUnavailable):
        return (
            503, {"Retry-After": str(UNAVAILABLE_RETRY)}, "Sign-in is unavailable",
            "Accounts cannot be checked right now. Please try again in a moment.",
        )
    if isinstance(error, UpstreamUnavailable):
        if error.kind == "timeout":
            return 504, {}, "The app is not responding", f"{host} took too long to answer."
        if error.kind == "not_running":
            return 502, {}, "The app is not running", f"{host} is installed but not running."
        return 502, {}, "The app is not reachable", f"{host} did not answer the request."
    if isinstance(error, UnknownHost):
        return 404, {}, "No app here", "No app is installed at this address."
    if isinstance(error, BodyTooLarge):
        return 413, {}, "Upload too large", f"Requests may carry at most {error.limit} bytes."
    if isinstance(error, UntrustedCaller):
        return (
            403, {}, "Not a trusted proxy",
            "The forward-auth endpoint answers only addresses in proxyauth.trusted_proxies.",
        )
    if isinstance(error, MalformedRequest):
        return 400, {}, "Bad request", error.why
    return 500, {}, "Something went wrong", "The request could not be handled."


def _sign_in(error: SignInRequired, pages: Pages, *, host: str, flavour: Flavour) -> web.Response:
    location = login_url(error.target)
    if not error.api and flavour != "nginx":
        response = web.Response(status=302, headers={"Location": location})
        response.headers["Cache-Control"] = "no-store"
        return response
    headers = {"WWW-Authenticate": _challenge(error, host)}
    if flavour == "nginx" and not error.api:
        headers[LOGIN_HEADER] = location
    return _json(401, {"error": "authentication required", "login": location}, headers)


def _challenge(error: SignInRequired, host: str) -> str:
    if error.basic_realm is not None:
        realm = error.basic_realm.replace('"', "")
        return f'Basic realm="{realm}", charset="UTF-8"'
    # A 401 must name a scheme (RFC 9110 11.6.1); the form login is described with the
    # Cookie scheme of draft-broyer-http-cookie-auth, which no browser turns into a dialog.
    safe_host = host.replace('"', "")
    return f'Cookie realm="{safe_host}", form-action="/login"'
