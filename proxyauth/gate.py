"""The wall's decision, one code path for both deployments: the wall as the reverse proxy
(``wall.py``) and the forward-auth endpoint a proxy asks (``forward_auth.py``).

For a ``Visit`` (the app's route, the normalised path, the client, its credentials) the gate
answers an ``Admission`` (pass, with or without an identity) or raises a ``WallError``:

1. Path not walled: pass; with the user's identity when a valid session comes along.
2. ``supportsBearerAuth`` and an ``Authorization: Bearer …``: pass untouched, unchecked, as
   Cloudron does (the app validates its own tokens).
3. ``basicAuth`` and ``Authorization: Basic …``: the portal checks it (password or an app
   password for this app, never TOTP: the documented trade-off); the wall consumes it, so the
   app never sees the password; no cookie is issued.
4. A session cookie for this app whose user still exists, is active and may use the app.
5. Otherwise ``SignInRequired``: browsers are sent to ``/login``, API clients get a 401.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from typing import Literal, final

from multidict import CIMultiDictProxy

from gateway.auth import (
    AuthUnavailable,
    LoginContext,
    LoginFailed,
    Portal,
    RateLimited,
    UserIdentity,
    UserPassword,
)
from proxyauth.access import AccessCheck
from proxyauth.errors import AccessDenied, CheckUnavailable, SignInRequired, TooManyAttempts
from proxyauth.forwarded import ClientView
from proxyauth.routes import Route
from proxyauth.sessions import SessionStore

log = logging.getLogger(__name__)

Via = Literal["open", "session", "basic", "bearer", "no_wall"]


@dataclass(frozen=True)
class Visit:
    """One request as the gate judges it."""

    route: Route
    client: ClientView
    method: str
    path: str
    target: str
    authorization: str | None
    session_token: str | None
    api: bool


@dataclass(frozen=True)
class Admission:
    via: Via
    identity: UserIdentity | None = None
    # Basic credentials the wall verified: the app gets X-Remote-User, not the password.
    drop_authorization: bool = False


def wants_api(headers: CIMultiDictProxy[str]) -> bool:
    """Whether a refused request should get a 401 rather than a redirect to the form.

    SPEC.md: requests that ask for JSON or carry ``Authorization`` get 401. So do scripted
    requests a redirect cannot help: WebSocket handshakes, ``fetch``/XHR, images (any
    ``Sec-Fetch-Mode`` but ``navigate``) and ``X-Requested-With: XMLHttpRequest``.
    """
    if "Authorization" in headers:
        return True
    if headers.get("Upgrade", "").lower() == "websocket":
        return True
    if headers.get("X-Requested-With", "").lower() == "xmlhttprequest":
        return True
    mode = headers.get("Sec-Fetch-Mode", "").lower()
    if mode and mode not in ("navigate", "nested-navigate"):
        return True
    accept = headers.get("Accept", "").lower()
    return "json" in accept and "text/html" not in accept


def auth_scheme(authorization: str | None) -> str:
    if not authorization:
        return ""
    return authorization.strip().partition(" ")[0].lower()


def parse_basic(authorization: str) -> tuple[str, str] | None:
    """(login, password) from ``Basic <base64>``; None when it does not decode."""
    _, _, param = authorization.strip().partition(" ")
    try:
        raw = base64.b64decode(param.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    login, sep, password = raw.partition(":")
    if not sep or not login:
        return None
    return login, password


@final
class Gate:
    def __init__(self, portal: Portal, sessions: SessionStore, access: AccessCheck) -> None:
        self._portal = portal
        self._sessions = sessions
        self._access = access

    async def admit(self, visit: Visit) -> Admission:
        rule = visit.route.wall
        if rule is None:
            return Admission("no_wall")
        if not rule.walls(visit.path):
            identity = await self._quiet_identity(visit)
            return Admission("open", identity)
        scheme = auth_scheme(visit.authorization)
        if rule.bearer_auth and scheme == "bearer":
            return Admission("bearer")
        if rule.basic_auth and scheme == "basic" and visit.authorization:
            identity = await self._basic(visit, visit.authorization)
            return Admission("basic", identity, drop_authorization=True)
        identity = await self.session_identity(visit)
        if identity is not None:
            return Admission("session", identity)
        raise SignInRequired(
            visit.target, api=visit.api,
            basic_realm=visit.route.host if rule.basic_auth else None,
        )

    async def session_identity(self, visit: Visit) -> UserIdentity | None:
        """The user of the visit's session cookie, if it is live, for this app, and they
        may still use the app; ``AccessDenied`` when they may not."""
        token = visit.session_token
        if not token:
            return None
        # Session and access lookups: a backend that fails answers 503, never a pass. One
        # try around the steps, not a wrapper per step: this runs on every request.
        try:
            session = await self._sessions.find(token)
            if session is None or session.app_id != visit.route.app_id:
                # A cookie from another app's host is worth nothing here.
                return None
            verdict, member = await self._access.check(session.user_id, visit.route.app_id)
            if verdict == "gone" or member is None:
                await self._sessions.end(token)
                return None
        except Exception as exc:
            log.error("session or access lookup failed: %s", exc)
            raise CheckUnavailable() from exc
        if verdict == "denied":
            raise AccessDenied(member.username or member.email)
        return member.identity(session.method)

    async def _quiet_identity(self, visit: Visit) -> UserIdentity | None:
        """Identity on an open path: a bonus for the app, never a reason to refuse."""
        if not visit.session_token:
            return None
        try:
            return await self.session_identity(visit)
        except (AccessDenied, CheckUnavailable):
            return None

    async def _basic(self, visit: Visit, authorization: str) -> UserIdentity:
        realm = visit.route.host
        parsed = parse_basic(authorization)
        if parsed is None:
            raise SignInRequired(visit.target, api=True, basic_realm=realm)
        login, password = parsed
        creds = UserPassword(
            login, password,
            LoginContext(
                door="proxyauth", source=visit.client.client_ip, app_id=visit.route.app_id,
                second_factor="skip",
            ),
            app_passwords_for=visit.route.app_id,
        )
        try:
            identity = await self._portal.login(creds)
        except RateLimited as exc:
            raise TooManyAttempts(exc.retry_after) from None
        except LoginFailed:
            raise SignInRequired(visit.target, api=True, basic_realm=realm) from None
        except AuthUnavailable:
            raise CheckUnavailable() from None
        if not isinstance(identity, UserIdentity):
            raise SignInRequired(visit.target, api=True, basic_realm=realm)
        return identity
