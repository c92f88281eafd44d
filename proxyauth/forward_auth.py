"""The forward-auth endpoint: the gate's decision for a proxy that does the proxying itself.

nginx ``auth_request``, Traefik ``ForwardAuth`` and Caddy ``forward_auth`` send the original
request's headers (cookie, ``Authorization``, ``Accept``) plus where it was going:
``X-Forwarded-Host``/``-Uri``/``-Method``/``-Proto`` (nginx snippets set ``X-Original-URI`` by
convention; both are read). The answer:

* 200 with ``X-Remote-User``/``-Email``/``-Name``/``-Groups`` when the request may pass (the
  headers are empty when nobody is signed in on an open path: the proxy's copy of them then
  replaces the client's with nothing);
* ``PATH``: a 302 to ``/login?redirect=…`` for browsers, a 401 for API clients, a 403 page
  (Traefik and Caddy hand the answer to the client as it is);
* ``PATH/nginx``: 401 for browsers too, with the login URL in ``X-Gateway-Login`` for
  ``error_page 401`` to redirect to, since ``auth_request`` cannot pass a redirect on.

Only peers in ``trusted_proxies`` are answered: the endpoint believes the headers that say
where the request was going, so nobody else may send them.
"""

from __future__ import annotations

from typing import final
from urllib.parse import urlsplit

from aiohttp import web

from proxyauth.answers import Flavour, answer
from proxyauth.errors import UnknownHost, UntrustedCaller, WallError
from proxyauth.forwarded import ClientView
from proxyauth.gate import Gate, Visit
from proxyauth.headers import IDENTITY_HEADERS, identity_headers, request_cookie
from proxyauth.pages import Pages
from proxyauth.paths import WALL_PATHS, encode, normalise
from proxyauth.routes import RouteTable


@final
class ForwardAuth:
    def __init__(
        self, *, path: str, gate: Gate, routes: RouteTable, pages: Pages, cookie_name: str
    ) -> None:
        self.path = path.rstrip("/") or "/"
        self._gate = gate
        self._routes = routes
        self._pages = pages
        self._cookie_name = cookie_name

    def serves(self, path: str) -> bool:
        return path == self.path or path.startswith(self.path + "/")

    async def handle(
        self, request: web.BaseRequest, view: ClientView, path: str, api: bool
    ) -> web.Response:
        """``api``: whether the request wants 401s rather than redirects (``wants_api``)."""
        flavour: Flavour = "nginx" if path == self.path + "/nginx" else "forward"
        try:
            if not view.trusted_peer:
                raise UntrustedCaller(view.peer)
            visit = self._visit(request, view, api)
            if visit.route.wall is not None and visit.path in WALL_PATHS:
                # The wall's own pages: the proxy sends them to the wall, never to the app.
                return _allow({})
            admission = await self._gate.admit(visit)
        except WallError as error:
            return answer(error, self._pages, api=api, host=view.host, flavour=flavour)
        if admission.identity is None:
            return _allow(dict.fromkeys(IDENTITY_HEADERS, ""))
        return _allow(identity_headers(admission.identity))

    def _visit(self, request: web.BaseRequest, view: ClientView, api: bool) -> Visit:
        headers = request.headers
        method = headers.get("X-Forwarded-Method") or headers.get("X-Original-Method") or "GET"
        uri = headers.get("X-Forwarded-Uri") or headers.get("X-Original-URI")
        if not uri and headers.get("X-Original-URL"):
            parts = urlsplit(headers["X-Original-URL"])
            uri = parts.path + ("?" + parts.query if parts.query else "")
        raw_path, _, query = (uri or "/").partition("?")
        path = normalise(raw_path)
        route = self._routes.lookup(view.host)
        if route is None:
            raise UnknownHost(view.host)
        return Visit(
            route=route, client=view, method=method.upper(), path=path,
            target=encode(path) + ("?" + query if query else ""),
            authorization=headers.get("Authorization"),
            session_token=request_cookie(request.headers, self._cookie_name), api=api,
        )


def _allow(headers: dict[str, str]) -> web.Response:
    return web.Response(status=200, headers={**headers, "Cache-Control": "no-store"})
