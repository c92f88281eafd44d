"""``/login`` and ``/logout`` on every app with the proxyAuth addon.

The form takes a username or an email and the password; a user with 2FA then gets the code
step (``pending.py`` says how the first step is carried). Every attempt goes through the
portal, so the lockout policy and the audit log see it; every failure shows the same
message; app passwords never work here (``app_passwords_for=None``).

CSRF: a random id in a ``SameSite=Strict`` login cookie, and in the form an HMAC of it
under the gateway's secret key (so a form token cannot be minted without the server), plus
the ``Origin`` (or ``Sec-Fetch-Site``, or ``Referer``) of a POST must be this site. The
session id is new at every login, and any session the browser brought is ended (no
fixation). ``/logout`` ends the session at once for same-site navigations (apps link to it,
as on Cloudron) and asks first when another site sent the browser.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import final
from urllib.parse import urlsplit

from aiohttp import web

from gateway.audit import AuditLog
from gateway.auth import (
    AuthUnavailable,
    LoginContext,
    LoginFailed,
    PasswordTOTP,
    Portal,
    RateLimited,
    TwoFactorRequired,
    UserIdentity,
    UserPassword,
)
from proxyauth.errors import (
    AccessDenied,
    BodyTooLarge,
    CheckUnavailable,
    MalformedRequest,
    TooManyAttempts,
)
from proxyauth.gate import Gate, Visit
from proxyauth.pages import Pages
from proxyauth.paths import safe_target
from proxyauth.pending import PendingLogins
from proxyauth.sessions import SessionStore
from proxyauth.throttle import FormThrottle

log = logging.getLogger(__name__)

FAILED = "That username, password or code is not right. Please try again."
EXPIRED = "This sign-in form expired. Please try again."
TIMED_OUT = "The sign-in took too long. Please enter your password again."
MISSING = "Enter your username or email and your password."
# How long the login cookie (and so a loaded form) stays usable.
FLOW_COOKIE_AGE = 3600
FLOW_ID_BYTES = 24


@final
class LoginForms:
    def __init__(
        self,
        *,
        portal: Portal,
        sessions: SessionStore,
        gate: Gate,
        pages: Pages,
        pending: PendingLogins,
        throttle: FormThrottle,
        form_limit: int,
        audit: AuditLog | None = None,
    ) -> None:
        self._form_limit = form_limit
        self._portal = portal
        self._sessions = sessions
        self._config = sessions.config
        self._gate = gate
        self._pages = pages
        self._pending = pending
        self._throttle = throttle
        self._audit = audit

    async def handle(self, request: web.BaseRequest, visit: Visit) -> web.StreamResponse:
        if visit.path == "/login":
            if request.method in ("GET", "HEAD"):
                return await self.show(request, visit)
            if request.method == "POST":
                return await self.submit(request, visit)
        elif request.method in ("GET", "HEAD", "POST"):
            return await self.logout(request, visit)
        return web.Response(status=405, headers={"Allow": "GET, HEAD, POST"})

    # -- the form --------------------------------------------------------------------

    async def show(self, request: web.BaseRequest, visit: Visit) -> web.StreamResponse:
        target = safe_target(request.query.get("redirect"))
        try:
            identity = await self._gate.session_identity(visit)
        except AccessDenied:
            identity = None
        if identity is not None:
            return _redirect(target)
        flow_id = self._flow_id(request) or _new_flow_id()
        return self._login_page(visit, flow_id, target)

    async def submit(self, request: web.BaseRequest, visit: Visit) -> web.StreamResponse:
        wait = self._throttle.take(visit.client.client_ip)
        if wait > 0:
            raise TooManyAttempts(wait)
        form = await _read_form(request, self._form_limit)
        target = safe_target(form.get("redirect"))
        flow_id = self._flow_id(request)
        if flow_id is None or not self._form_is_ours(request, visit, flow_id, form):
            return self._login_page(visit, _new_flow_id(), target, error=EXPIRED, status=400)
        if form.get("step") == "totp":
            return await self._second_step(request, visit, flow_id, form)
        return await self._first_step(request, visit, flow_id, form, target)

    async def _first_step(
        self, request: web.BaseRequest, visit: Visit, flow_id: str, form: dict[str, str],
        target: str,
    ) -> web.StreamResponse:
        login = form.get("username", "").strip()
        password = form.get("password", "")
        if not login or not password:
            return self._login_page(
                visit, flow_id, target, error=MISSING, username=login, status=400
            )
        creds = UserPassword(login, password, self._context(visit, "enforce"))
        try:
            identity = await self._portal.login(creds)
        except TwoFactorRequired:
            # A fresh id for the pending step: the one the form was served under may have
            # been seen by anything that saw that page.
            self._pending.drop(flow_id)
            step_id = _new_flow_id()
            self._pending.put(
                step_id, login=login, password=password, app_id=visit.route.app_id,
                target=target,
            )
            return self._totp_page(visit, step_id, login, target)
        except RateLimited as exc:
            raise TooManyAttempts(exc.retry_after) from None
        except LoginFailed:
            return self._login_page(
                visit, flow_id, target, error=FAILED, username=login, status=401
            )
        except AuthUnavailable:
            raise CheckUnavailable() from None
        return await self._sign_in(request, visit, identity, target)

    async def _second_step(
        self, request: web.BaseRequest, visit: Visit, flow_id: str, form: dict[str, str]
    ) -> web.StreamResponse:
        pending = self._pending.get(flow_id, visit.route.app_id)
        if pending is None:
            return self._login_page(
                visit, _new_flow_id(), safe_target(form.get("redirect")), error=TIMED_OUT,
                status=400,
            )
        code = "".join(form.get("code", "").split())
        creds = PasswordTOTP(
            pending.login, pending.password, code, self._context(visit, "enforce")
        )
        try:
            identity = await self._portal.login(creds)
        except RateLimited as exc:
            raise TooManyAttempts(exc.retry_after) from None
        except LoginFailed:
            if self._pending.failed(flow_id):
                return self._login_page(
                    visit, _new_flow_id(), pending.target, error=FAILED,
                    username=pending.login, status=401,
                )
            return self._totp_page(
                visit, flow_id, pending.login, pending.target, error=FAILED, status=401
            )
        except AuthUnavailable:
            raise CheckUnavailable() from None
        self._pending.drop(flow_id)
        return await self._sign_in(request, visit, identity, pending.target)

    async def _sign_in(
        self, request: web.BaseRequest, visit: Visit, identity: object, target: str
    ) -> web.StreamResponse:
        if not isinstance(identity, UserIdentity):
            raise CheckUnavailable()
        old = request.cookies.get(self._config.cookie_name)
        try:
            if old:
                # A session id is never reused across a login (fixation).
                await self._sessions.end(old)
            token = await self._sessions.create(
                user_id=identity.user_id, app_id=visit.route.app_id, method=identity.method
            )
        except Exception as exc:
            log.error("could not start a session: %s", exc)
            raise CheckUnavailable() from exc
        response = _redirect(target)
        response.set_cookie(
            self._config.cookie_name, token,
            **self._config.cookie_attributes(self._config.lifetime),  # type: ignore[arg-type]
        )
        self._clear_flow_cookie(response)
        return response

    # -- logout ----------------------------------------------------------------------

    async def logout(self, request: web.BaseRequest, visit: Visit) -> web.StreamResponse:
        if request.method == "POST":
            form = await _read_form(request, self._form_limit)
            flow_id = self._flow_id(request)
            if flow_id is None or not self._form_is_ours(request, visit, flow_id, form):
                return self._confirm_logout(visit, _new_flow_id(), status=400)
        elif request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
            # A link on another site: ask, so nobody can sign users out from afar.
            return self._confirm_logout(visit, self._flow_id(request) or _new_flow_id())
        token = request.cookies.get(self._config.cookie_name)
        if token:
            try:
                session = await self._sessions.find(token)
                await self._sessions.end(token)
            except Exception as exc:
                log.error("could not end a session: %s", exc)
                raise CheckUnavailable() from exc
            if session is not None and self._audit is not None:
                self._audit.record(
                    "user.logout", door="proxyauth", source=visit.client.client_ip,
                    app_id=visit.route.app_id, user_id=session.user_id,
                )
        flow_id = self._flow_id(request)
        if flow_id:
            self._pending.drop(flow_id)
        response = self._pages.render(
            "signed_out.html", host=visit.route.host, app_title=visit.route.title
        )
        self._clear(response, self._config.cookie_name)
        self._clear_flow_cookie(response)
        return response

    # -- pieces ----------------------------------------------------------------------

    def _context(self, visit: Visit, second_factor: str) -> LoginContext:
        return LoginContext(
            door="proxyauth", source=visit.client.client_ip, app_id=visit.route.app_id,
            second_factor="enforce" if second_factor == "enforce" else "skip",
        )

    def _flow_id(self, request: web.BaseRequest) -> str | None:
        value = request.cookies.get(self._config.flow_cookie_name)
        if value and 16 <= len(value) <= 64 and value.isascii():
            return value
        return None

    def csrf_token(self, flow_id: str) -> str:
        return self._portal.secret_digest("proxyauth-csrf\0" + flow_id)

    def _form_is_ours(
        self, request: web.BaseRequest, visit: Visit, flow_id: str, form: dict[str, str]
    ) -> bool:
        expected = self.csrf_token(flow_id)
        given = form.get("csrf", "")
        if not hmac.compare_digest(expected.encode(), given.encode()):
            return False
        return _same_origin(request, visit)

    def _login_page(
        self, visit: Visit, flow_id: str, target: str, *, error: str | None = None,
        username: str = "", status: int = 200,
    ) -> web.Response:
        response = self._pages.render(
            "login.html", status=status, host=visit.route.host, app_title=visit.route.title,
            csrf=self.csrf_token(flow_id), target=target, error=error, username=username,
        )
        self._set_flow_cookie(response, flow_id)
        return response

    def _totp_page(
        self, visit: Visit, flow_id: str, login: str, target: str, *,
        error: str | None = None, status: int = 200,
    ) -> web.Response:
        response = self._pages.render(
            "totp.html", status=status, host=visit.route.host, app_title=visit.route.title,
            csrf=self.csrf_token(flow_id), username=login, target=target, error=error,
        )
        self._set_flow_cookie(response, flow_id)
        return response

    def _confirm_logout(self, visit: Visit, flow_id: str, status: int = 200) -> web.Response:
        response = self._pages.render(
            "confirm_logout.html", status=status, host=visit.route.host,
            app_title=visit.route.title, csrf=self.csrf_token(flow_id),
        )
        self._set_flow_cookie(response, flow_id)
        return response

    def _set_flow_cookie(self, response: web.StreamResponse, flow_id: str) -> None:
        attributes = self._config.cookie_attributes(FLOW_COOKIE_AGE)
        attributes["samesite"] = "Strict"
        response.set_cookie(self._config.flow_cookie_name, flow_id, **attributes)  # type: ignore[arg-type]

    def _clear_flow_cookie(self, response: web.StreamResponse) -> None:
        self._clear(response, self._config.flow_cookie_name)

    def _clear(self, response: web.StreamResponse, name: str) -> None:
        # Same attributes as when set: a __Host- cookie is only replaced by a Secure one.
        response.set_cookie(name, "", **self._config.cookie_attributes(0))  # type: ignore[arg-type]


def _new_flow_id() -> str:
    return secrets.token_urlsafe(FLOW_ID_BYTES)


def _redirect(target: str) -> web.Response:
    # 303: the browser follows with a GET whatever the form's method was.
    response = web.Response(status=303, headers={"Location": target})
    response.headers["Cache-Control"] = "no-store"
    return response


def _same_origin(request: web.BaseRequest, visit: Visit) -> bool:
    """Whether a browser says this POST came from a page of this site.

    ``Origin`` when sent (every current browser sends it on POST; "null" is refused), else
    ``Sec-Fetch-Site``, else the ``Referer``'s origin; a client that sends none of them is
    not a browser, and the CSRF token alone stands.
    """
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin.lower() == visit.client.origin.lower()
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site.lower() == "same-origin"
    referer = request.headers.get("Referer")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}".lower() == visit.client.origin.lower()
    return True


async def _read_form(request: web.BaseRequest, limit: int) -> dict[str, str]:
    """The form's text fields; the application's ``client_max_size`` is ``limit``."""
    try:
        data = await request.post()
    except web.HTTPRequestEntityTooLarge as exc:
        raise BodyTooLarge(limit) from exc
    except ValueError as exc:
        raise MalformedRequest("the form could not be read") from exc
    return {k: v for k, v in data.items() if isinstance(v, str)}
