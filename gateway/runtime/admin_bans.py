"""``GET /bans`` and ``POST /bans/lift`` on the admin endpoint: the ban book for operators.

Why an endpoint: with ``memory://`` the bans live inside the running ``gateway serve``, so
``gateway bans`` must ask that process; with ``redis://`` it could read Redis itself, but
one path for both keeps the CLI simple and the lift's side effects (counters cleared, log
line) in the policy.

How it is protected, since the admin endpoint itself is not authenticated:
- loopback peers only (even if ``admin.listen`` is opened up for metrics scrapers): 403;
- a bearer token from ``<data_dir>/admin-token`` (0600, made at start), which only users
  who can read the data dir have — the CLI reads it from there; it also stops a web page
  in a local browser from POSTing a lift (a custom header needs a CORS preflight);
- lifting is POST only, with a small JSON body ``{"subject": "..."}``.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.runtime.server import Address
from ratelimit import AttemptPolicy, Ban, LockoutPolicy, StorageUnavailable

TOKEN_FILE = "admin-token"
MAX_BODY = 4096

POLICY = web.AppKey("ban_policy", object)
TOKEN = web.AppKey("ban_token", str)


def token_path(data_dir: Path) -> Path:
    return data_dir / TOKEN_FILE


def admin_token(data_dir: Path) -> str:
    """The admin token, created (0600) on first use; ``gateway serve`` calls this at start."""
    path = token_path(data_dir)
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = ""
    if text:
        return text
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


def read_admin_token(data_dir: Path) -> str | None:
    """The token for a client (the CLI), or None when no server has made one."""
    try:
        return token_path(data_dir).read_text().strip() or None
    except FileNotFoundError:
        return None


def ban_record(ban: Ban, now: float) -> dict[str, Any]:
    """A ban as the endpoint (and ``gateway bans list --json``) spells it: stable keys."""
    return {
        "subject": ban.subject.key,
        "scope": ban.subject.scope,
        "who": ban.subject.value,
        "kind": ban.kind,
        "door": ban.door,
        "failures": ban.failures,
        "window": ban.window,
        "reason": ban.reason,
        "since": ban.since,
        "until": ban.until,
        "retry_after": max(0.0, ban.until - now),
    }


def _loopback(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        # A unix socket has no address: only local users can reach it anyway.
        return request.remote in (None, "", "unix")


@web.middleware
async def _guard(request: web.Request, handler: Any) -> web.StreamResponse:
    if not request.path.startswith("/bans"):
        response: web.StreamResponse = await handler(request)
        return response
    if not _loopback(request):
        return web.json_response({"error": "loopback clients only"}, status=403)
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not given or not hmac.compare_digest(given, request.app[TOKEN]):
        return web.json_response(
            {"error": "missing or wrong admin token"}, status=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    response = await handler(request)
    return response


def _lockout(request: web.Request) -> LockoutPolicy | None:
    policy = request.app[POLICY]
    return policy if isinstance(policy, LockoutPolicy) else None


async def list_bans(request: web.Request) -> web.Response:
    policy = _lockout(request)
    if policy is None:
        return web.json_response({"enabled": False, "bans": []})
    include_delays = request.query.get("delays") in ("1", "true", "yes")
    try:
        bans = await policy.bans(include_delays=include_delays)
    except StorageUnavailable as exc:
        return web.json_response({"error": f"rate-limit storage unreachable: {exc}"}, status=503)
    now = policy.now()
    return web.json_response({"enabled": True, "bans": [ban_record(b, now) for b in bans]})


async def lift_ban(request: web.Request) -> web.Response:
    policy = _lockout(request)
    if policy is None:
        return web.json_response({"error": "the lockout policy is off"}, status=409)
    if (request.content_length or 0) > MAX_BODY:
        return web.json_response({"error": "body too large"}, status=413)
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": 'expected JSON {"subject": "..."}'}, status=400)
    subject = body.get("subject") if isinstance(body, dict) else None
    if not isinstance(subject, str) or not subject.strip():
        return web.json_response({"error": 'expected JSON {"subject": "..."}'}, status=400)
    try:
        target = policy.subject(subject)
        lifted = await policy.lift(target)
    except StorageUnavailable as exc:
        return web.json_response({"error": f"rate-limit storage unreachable: {exc}"}, status=503)
    return web.json_response({"subject": target.key, "lifted": lifted})


def add_ban_routes(app: web.Application, policy: AttemptPolicy, token: str) -> None:
    """Serve the ban book on ``app`` (the admin endpoint's application)."""
    app[POLICY] = policy
    app[TOKEN] = token
    app.middlewares.append(_guard)
    app.router.add_get("/bans", list_bans)
    app.router.add_post("/bans/lift", lift_ban)


def client_base_url(address: Address | tuple[str, int]) -> str:
    """Where a local client reaches an admin endpoint listening on ``address``."""
    host, port = address[0], address[1]
    if host in ("0.0.0.0", ""):  # noqa: S104 - mapping a wildcard bind to a loopback target
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
