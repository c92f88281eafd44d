"""``LoginWall``: the middleware every request passes first.

It works out who is asking (``forwarded.py``), the one normalised path (``paths.py``) and
the app (``routes.py``); sends ``/login`` and ``/logout`` of apps with the addon to the
login forms, the forward-auth path to the endpoint, and everything else to the gate. A
request the gate admits goes on to the handler (the upstream proxy) with the ``Visit`` and
the ``Admission`` on it; a refusal is answered through the one table (``answers.py``).
"""

from __future__ import annotations

import logging
from typing import final

from aiohttp import web
from aiohttp.typedefs import Handler

from proxyauth.answers import answer
from proxyauth.errors import UnknownHost, WallError
from proxyauth.forward_auth import ForwardAuth
from proxyauth.forwarded import TrustedProxies
from proxyauth.gate import Admission, Gate, Visit, wants_api
from proxyauth.headers import request_cookie
from proxyauth.login import LoginForms
from proxyauth.metrics import WallMetrics
from proxyauth.pages import Pages
from proxyauth.paths import WALL_PATHS, encode, normalise
from proxyauth.routes import RouteTable

log = logging.getLogger(__name__)

VISIT = web.RequestKey("proxyauth.visit", Visit)
ADMISSION = web.RequestKey("proxyauth.admission", Admission)


@final
class LoginWall:
    # aiohttp's mark of a new-style middleware (what @web.middleware sets).
    __middleware_version__ = 1

    def __init__(
        self,
        *,
        routes: RouteTable,
        gate: Gate,
        forms: LoginForms,
        forward_auth: ForwardAuth | None,
        trusted: TrustedProxies,
        pages: Pages,
        cookie_name: str,
        metrics: WallMetrics,
    ) -> None:
        self._routes = routes
        self._gate = gate
        self._forms = forms
        self._forward_auth = forward_auth
        self._trusted = trusted
        self._pages = pages
        self._cookie_name = cookie_name
        self._metrics = metrics

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        view = self._trusted.view(request)
        api = wants_api(request.headers)
        raw_path, _, query = request.raw_path.partition("?")
        try:
            path = normalise(raw_path)
            forward_auth = self._forward_auth
            if forward_auth is not None and forward_auth.serves(path):
                response = await forward_auth.handle(request, view, path, api)
                self._metrics.checked(response.status)
                return response
            route = self._routes.lookup(view.host)
            if route is None:
                raise UnknownHost(view.host)
            visit = Visit(
                route=route, client=view, method=request.method, path=path,
                target=encode(path) + ("?" + query if query else ""),
                authorization=request.headers.get("Authorization"),
                session_token=request_cookie(request.headers, self._cookie_name), api=api,
            )
            if route.wall is not None and path in WALL_PATHS:
                return await self._forms.handle(request, visit)
            admission = await self._gate.admit(visit)
            self._metrics.decided(admission.via)
            request[VISIT] = visit
            request[ADMISSION] = admission
            return await handler(request)
        except WallError as error:
            self._metrics.decided(type(error).__name__)
            return answer(error, self._pages, api=api, host=view.host)

