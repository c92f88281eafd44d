"""The [proxyauth] section: the login wall in front of web apps, and its forward-auth endpoint.

Defaults are the safe ones: loopback listener, nobody's ``X-Forwarded-*`` trusted, Secure
cookies, sessions in the store. ``proxyauth.server.check_config`` checks what the loader's
types cannot (CIDRs, the storage URL, the endpoint path) and names the key when it fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# model.py imports this module while it is still being defined, so its value types are
# reached through the module object: annotations are strings resolved after it has loaded
# (typing.get_type_hints), and defaults are built by factories at instantiation.
import gateway.config.model as _model
from gateway.config.fields import doc

DAY = 86_400.0


@dataclass(frozen=True)
class ProxyAuthConfig:
    enabled: bool = field(default=True, metadata=doc("Serve the login wall."))
    listen: _model.ListenAddress = field(
        default_factory=lambda: _model.ListenAddress("127.0.0.1", 8080),
        metadata=doc(
            "Address the wall (reverse proxy, /login, /logout, forward-auth) listens on. "
            "Unprivileged loopback by default: put a TLS terminator in front of it."
        ),
    )
    trusted_proxies: list[str] = field(
        default_factory=list,
        metadata=doc(
            "CIDRs of the proxies whose X-Forwarded-For/-Proto/-Host/-Port are believed, "
            "e.g. [\"127.0.0.1/32\"]. Empty: nobody's; the peer address is the client. "
            "The forward-auth endpoint answers only these peers."
        ),
    )
    forward_auth: bool = field(
        default=True,
        metadata=doc("Answer forward-auth checks (nginx auth_request, Traefik, Caddy)."),
    )
    forward_auth_path: str = field(
        default="/_gateway/auth",
        metadata=doc(
            "Path of the forward-auth endpoint; PATH/nginx answers 401 instead of a "
            "redirect, as nginx's auth_request needs. Reserved on every app host."
        ),
    )
    cookie_name: str = field(
        default="gateway_session",
        metadata=doc(
            "Name of the session cookie. With secure_cookies the browser sees it as "
            "__Host-NAME, which the browser keeps host-only, Secure and on Path=/."
        ),
    )
    secure_cookies: bool = field(
        default=True,
        metadata=doc(
            "Mark cookies Secure (HTTPS only). false only for plain-HTTP development: "
            "the wall then warns at start and says so on its login page."
        ),
    )
    session_idle: float = field(
        default=DAY,
        metadata=doc(
            "Seconds a session may go unused before it ends.", min=60.0, max=7 * DAY
        ),
    )
    session_lifetime: float = field(
        default=7 * DAY,
        metadata=doc(
            "Seconds after login a session ends however active it is (Cloudron's token "
            "lifetime, the most SPEC.md allows).",
            min=300.0,
            max=7 * DAY,
        ),
    )
    session_storage: str = field(
        default="store",
        metadata=doc(
            "Where sessions live: \"store\" (the gateway's store; every node sees them) or "
            "a redis:// / rediss:// / unix:// URL shared by several nodes."
        ),
    )
    session_redis_password: _model.Secret | None = field(
        default=None,
        metadata=doc("Password for session_storage's Redis, kept out of the URL."),
    )
    login_rate: float = field(
        default=10.0,
        metadata=doc(
            "Login form POSTs per second allowed from one address (before any password "
            "work; Cloudron's nginx allowed 10/s). Lockout is the credential check's.",
            min=0.1,
            max=1000.0,
        ),
    )
    login_burst: int = field(
        default=5,
        metadata=doc("Login POSTs one address may send at once.", min=1, max=1000),
    )
    second_step_timeout: float = field(
        default=300.0,
        metadata=doc(
            "Seconds the 2FA step waits for the code after a right password.",
            min=30.0,
            max=1800.0,
        ),
    )
    max_body_bytes: int = field(
        default=0,
        metadata=doc(
            "Largest request body passed to an app, in bytes; 0: no limit. Bodies stream "
            "through either way, never held in memory.",
            min=0,
        ),
    )
    form_max_bytes: int = field(
        default=16_384,
        metadata=doc("Largest login or logout form body read.", min=1024, max=1_048_576),
    )
    upstream_connect_timeout: float = field(
        default=10.0,
        metadata=doc("Seconds to connect to an app.", min=0.1, max=300.0),
    )
    upstream_idle_timeout: float = field(
        default=3600.0,
        metadata=doc(
            "Seconds an app may stay silent mid-response (long polls, event streams).",
            min=1.0,
            max=86_400.0,
        ),
    )
    upstream_connections: int = field(
        default=512,
        metadata=doc("Most open connections to all apps together.", min=1, max=100_000),
    )
    title: str = field(
        default="Sign in",
        metadata=doc("Heading of the login page; the app's address is shown under it."),
    )
    template_dir: Path | None = field(
        default=None,
        metadata=doc(
            "Directory whose login.html, totp.html, … replace the built-in pages "
            "(Jinja2, autoescaped)."
        ),
    )
    access_log: bool = field(
        default=False, metadata=doc("Log every proxied request (one line each).")
    )
