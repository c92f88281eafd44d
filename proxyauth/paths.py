"""The one path the wall judges and the app receives, and the redirect targets it honours.

``normalise`` percent-decodes the raw request path once, resolves dot segments and merges
duplicate slashes; the wall matches its rule on the result *and forwards the result*, so
``/%61dmin``, ``//admin`` and ``/./admin`` cannot reach ``/admin`` unwalled, and the app
never decodes something the wall did not see (nginx matches a normalised path but forwards
the raw one). The price: an app sees ``/a%2Fb`` as ``/a/b``.
"""

from __future__ import annotations

from urllib.parse import quote_from_bytes, unquote_to_bytes, urlsplit

from proxyauth.errors import MalformedRequest

# Characters RFC 3986 allows unencoded in a path segment, besides unreserved ones.
_PATH_SAFE = "/!$&'()*+,;=:@-._~"
# Longest redirect target carried through the login form (browsers cap URLs near 2 KB-64 KB).
MAX_TARGET = 4096
# Paths the wall answers itself; never a target to come back to (that would loop).
WALL_PATHS = frozenset({"/login", "/logout"})


def _has_control(data: bytes) -> bool:
    return any(b < 0x20 or b == 0x7F for b in data)


def normalise(raw_path: str) -> str:
    """The decoded, dot-free, single-slash form of a raw request path (no query).

    Raises ``MalformedRequest`` for what no honest client sends: a target that is not an
    absolute path, a literal backslash, or a control character (even percent-encoded).
    """
    if not raw_path.startswith("/"):
        raise MalformedRequest("the request target is not an absolute path")
    if (
        raw_path.isascii() and raw_path.isprintable() and "%" not in raw_path
        and "//" not in raw_path and "/." not in raw_path and "\\" not in raw_path
    ):
        # Nothing to decode, resolve or merge: most requests.
        return raw_path
    if "\\" in raw_path:
        raise MalformedRequest("backslash in the path")
    decoded = unquote_to_bytes(raw_path)
    if _has_control(decoded):
        raise MalformedRequest("control character in the path")
    segments: list[bytes] = []
    parts = decoded.split(b"/")[1:]
    for i, segment in enumerate(parts):
        last = i == len(parts) - 1
        if segment == b"..":
            if segments:
                segments.pop()
            if last:
                segments.append(b"")
        elif segment == b".":
            if last:
                segments.append(b"")
        elif segment or last:
            segments.append(segment)
    return "/" + b"/".join(segments).decode("utf-8", "surrogateescape")


def encode(path: str) -> str:
    """A normalised path, percent-encoded for the request line to the app."""
    return quote_from_bytes(path.encode("utf-8", "surrogateescape"), safe=_PATH_SAFE)


def safe_target(value: str | None, fallback: str = "/") -> str:
    """``value`` if it is a same-origin relative path worth returning to, else ``fallback``.

    Accepted: starts with one ``/`` (not ``//``, not ``/\\``), no scheme or authority, no
    control characters (browsers drop tabs and newlines, turning ``/\\t/evil`` into
    ``//evil``), and not the wall's own pages. Everything else (``https://evil``, ``//evil``,
    ``/\\evil``, ``javascript:``) falls back: the 2019 Cloudron open redirect is not copied.
    """
    if not value or len(value) > MAX_TARGET:
        return fallback
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return fallback
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return fallback
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return fallback
    try:
        path = normalise(parts.path)
    except MalformedRequest:
        return fallback
    if path in WALL_PATHS or path.startswith("//"):
        return fallback
    return value
