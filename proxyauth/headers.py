"""Which headers cross the wall, in each direction.

To the app: hop-by-hop headers (RFC 9110 section 7.6.1, and any the ``Connection`` header
names) are dropped; every identity header a client could send is dropped, whatever its
spelling (``X-Remote-User``, ``X_Remote_User``, ``Remote-User``, ``X-Forwarded-User`` …:
CGI-style servers fold ``_`` and ``-`` together), then the wall's own are set; the
wall's cookies are cut out of ``Cookie``; ``X-Forwarded-*`` are the wall's. Back to the
client: hop-by-hop headers are dropped, and so is any ``Set-Cookie`` an app tries to plant
under the wall's cookie names.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy

from gateway.auth import UserIdentity
from proxyauth.forwarded import ClientView

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})

# What the app receives about the signed-in user (documented in docs/forward-auth.md).
REMOTE_USER = "X-Remote-User"
REMOTE_EMAIL = "X-Remote-Email"
REMOTE_NAME = "X-Remote-Name"
REMOTE_GROUPS = "X-Remote-Groups"
IDENTITY_HEADERS = (REMOTE_USER, REMOTE_EMAIL, REMOTE_NAME, REMOTE_GROUPS)

# Spellings other walls use for the same facts (Authelia, oauth2-proxy, packagers' guesses
# at Cloudron's): an app may trust any of them, so a client may send none of them.
_SPOOFABLE = frozenset(
    name.lower().replace("_", "-")
    for name in (
        *IDENTITY_HEADERS,
        "Remote-User", "Remote-Email", "Remote-Name", "Remote-Groups",
        "X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Groups",
        "X-Forwarded-Preferred-Username", "X-Auth-Request-User", "X-Auth-Request-Email",
        "X-Auth-Request-Groups", "X-Auth-Request-Preferred-Username",
        "X-Cloudron-User", "X-Cloudron-Username", "X-Cloudron-Email",
    )
)
# Set by the wall itself; a client's copies are never passed on.
_OURS = frozenset({
    "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port",
    "x-real-ip", "forwarded",
})
# The client handshake already happened with the wall; aiohttp's client writes its own.
_NOT_FORWARDED = frozenset({"host", "expect", "content-length"})
_WEBSOCKET_HANDSHAKE = frozenset({
    "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
    "sec-websocket-protocol", "sec-websocket-accept",
})


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-")


def _connection_listed(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> set[str]:
    listed: set[str] = set()
    for value in headers.getall("Connection", ()):
        listed.update(token.strip().lower() for token in value.split(",") if token.strip())
    return listed


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _clean(value: str) -> str:
    """Header-safe text: no control characters (so no header splitting), trimmed."""
    if value.isprintable():
        return value.strip()
    return _CONTROL.sub("", value).strip()


@functools.lru_cache(maxsize=4096)
def _identity_pairs(identity: UserIdentity) -> tuple[tuple[str, str], ...]:
    return (
        (REMOTE_USER, _clean(identity.username or identity.user_id)),
        (REMOTE_EMAIL, _clean(identity.email)),
        (REMOTE_NAME, _clean(identity.display_name)),
        (REMOTE_GROUPS, ",".join(_clean(g) for g in identity.group_names)),
    )


def identity_headers(identity: UserIdentity) -> dict[str, str]:
    """The wall's identity headers for a signed-in user (UTF-8 as is, as Authelia sends).

    Computed once per identity (identities are frozen; a changed user is a new one).
    """
    return dict(_identity_pairs(identity))


def without_cookies(cookie_header: str, names: Iterable[str]) -> str:
    """``Cookie`` with the named cookies cut out, every other pair kept verbatim."""
    drop = set(names)
    kept = [
        pair.strip()
        for pair in cookie_header.split(";")
        if pair.strip() and pair.split("=", 1)[0].strip() not in drop
    ]
    return "; ".join(kept)


# What happens to a client header on its way to the app, decided once per header name.
_DROP, _KEEP, _COOKIE, _AUTHORIZATION, _WEBSOCKET = range(5)


@functools.lru_cache(maxsize=1024)
def _fate(name: str) -> int:
    low = name.lower()
    if low in HOP_BY_HOP or low in _OURS or low in _NOT_FORWARDED:
        return _DROP
    if _canonical(name) in _SPOOFABLE:
        return _DROP
    if low in _WEBSOCKET_HANDSHAKE:
        return _WEBSOCKET
    if low == "cookie":
        return _COOKIE
    if low == "authorization":
        return _AUTHORIZATION
    return _KEEP


def upstream_request_headers(
    client: CIMultiDictProxy[str],
    view: ClientView,
    *,
    identity: UserIdentity | None,
    cookie_names: Iterable[str],
    drop_authorization: bool = False,
    websocket: bool = False,
) -> CIMultiDict[str]:
    listed = _connection_listed(client) if "Connection" in client else ()
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in client.items():
        fate = _fate(name)
        if fate == _DROP or (listed and name.lower() in listed):
            continue
        if fate == _WEBSOCKET and websocket:
            continue
        if fate == _AUTHORIZATION and drop_authorization:
            continue
        if fate == _COOKIE:
            value = without_cookies(value, cookie_names)
            if not value:
                continue
        out.add(name, value)
    # The app is addressed by the name the browser used, as behind Cloudron's nginx.
    host = view.host_header
    out["Host"] = host
    out["X-Forwarded-For"] = view.forwarded_for
    out["X-Forwarded-Host"] = host
    out["X-Forwarded-Proto"] = view.scheme
    out["X-Forwarded-Port"] = str(view.port)
    out["X-Real-IP"] = view.client_ip
    if identity is not None:
        out.extend(_identity_pairs(identity))
    return out


def request_cookie(headers: CIMultiDictProxy[str], name: str) -> str | None:
    """Cookie ``name`` from a request's ``Cookie`` header(s)."""
    values = headers.getall("Cookie", ())
    if not values:
        return None
    return cookie_value(values[0] if len(values) == 1 else "; ".join(values), name)


def cookie_value(cookie_header: str | None, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header (first one wins), or None.

    Only the wall's own cookie is looked for, so a full parse of every cookie (what
    ``request.cookies`` does) is not needed on each request.
    """
    if not cookie_header or name not in cookie_header:
        return None
    for pair in cookie_header.split(";"):
        key, sep, value = pair.partition("=")
        if sep and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
    return None


def client_response_headers(
    upstream: CIMultiDictProxy[str] | CIMultiDict[str], cookie_names: Iterable[str]
) -> CIMultiDict[str]:
    listed = _connection_listed(upstream)
    ours = set(cookie_names)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in upstream.items():
        low = name.lower()
        if low in HOP_BY_HOP or low in listed:
            continue
        if low == "set-cookie" and value.split("=", 1)[0].strip() in ours:
            continue
        out.add(name, value)
    return out
