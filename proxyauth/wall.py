"""``LoginWall``: the one handler every request of the wall goes through.

It works out who is asking (``forwarded.py``), the one normalised path (``paths.py``) and
the app (``routes.py``); sends ``/login`` and ``/logout`` of apps with the addon to the
login forms, the forward-auth path to the endpoint, and everything else to the gate. A
request the gate admits goes on to the upstream proxy with its ``Visit`` and
``Admission``; a refusal is answered through the one table (``answers.py``).
"""

from __future__ import annotations

import logging
from typing import final

from aiohttp import web

from proxyauth.answers import answer
from proxyauth.errors import UnknownHost, WallError
from proxyauth.forward_auth import ForwardAuth
from proxyauth.forwarded import TrustedProxies
from proxyauth.gate import Gate, Visit, wants_api
from proxyauth.headers import request_cookie
from proxyauth.login import LoginForms
from proxyauth.metrics import WallMetrics
from proxyauth.pages import Pages
from proxyauth.paths import WALL_PATHS, encode, normalise
from proxyauth.routes import RouteTable
from proxyauth.upstream import UpstreamProxy

log = logging.getLogger(__name__)


@final
class LoginWall:
    def __init__(
        self,
        *,
        routes: RouteTable,
        gate: Gate,
        forms: LoginForms,
        forward_auth: ForwardAuth | None,
        upstream: UpstreamProxy,
        trusted: TrustedProxies,
        pages: Pages,
        cookie_name: str,
        metrics: WallMetrics,
    ) -> None:
        self._routes = routes
        self._gate = gate
        self._forms = forms
        self._forward_auth = forward_auth
        self._upstream = upstream
        self._trusted = trusted
        self._pages = pages
        self._cookie_name = cookie_name
        self._metrics = metrics

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
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
                await continue_if_expected(request)
                return await self._forms.handle(request, visit)
            admission = await self._gate.admit(visit)
            self._metrics.decided(admission.via)
            # Only now, with the request admitted, is the client asked for its body.
            await continue_if_expected(request)
            return await self._upstream.forward(request, visit, admission)
        except WallError as error:
            self._metrics.decided(type(error).__name__)
            return answer(error, self._pages, api=api, host=view.host)


async def continue_if_expected(request: web.BaseRequest) -> None:
    """Answer ``Expect: 100-continue`` (RFC 9110 section 10.1.1) as aiohttp's router would,
    but after the wall's decision: a refused upload is refused before it is sent."""
    expect = request.headers.get("Expect")
    if expect is None or request.version < (1, 1):
        return
    if expect.lower() != "100-continue":
        raise web.HTTPExpectationFailed(text=f"Unknown Expect: {expect}")
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    # The interim answer is not part of the response's size.
    request.writer.output_size = 0
