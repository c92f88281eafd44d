"""The reverse proxy to an app's upstream: bodies stream both ways, nothing is buffered.

HTTP exchanges go through the wall's own keep-alive pool (``pool.py``, ``http1.py``);
WebSocket handshakes through aiohttp's client (``websocket.py``).

Request bodies go from the client's socket to the app's as they arrive (aiohttp's stream
reader pauses the client when the app reads slowly, so a 1 GB upload costs a few buffers
of memory); response bodies likewise, except answers small enough to read at once (64 KiB
and a ``Content-Length``), which are. The app is addressed by the normalised path the wall
judged (``paths.normalise``) and the client's raw query.

An app that cannot be reached gets the platform's page (502/504) while nothing has been
sent; an answer that breaks off midway closes the client connection, so the client sees a
truncated response rather than a complete-looking one.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator
from typing import final

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway.config.proxyauth import ProxyAuthConfig
from proxyauth.errors import BodyTooLarge, UpstreamUnavailable
from proxyauth.gate import Admission, Visit
from proxyauth.headers import client_response_headers, upstream_request_headers
from proxyauth.http1 import UpstreamProtocolError
from proxyauth.pool import UpstreamConnectError, UpstreamPool, UpstreamResponse
from proxyauth.websocket import is_websocket, relay_websocket

log = logging.getLogger(__name__)

# Answers up to this size with a Content-Length are read whole: one write instead of a loop.
SMALL_BODY = 64 * 1024


class _BodyMeter:
    """Streams a request body on, refusing it once it passes ``limit`` (None: no limit)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit

    async def stream(self, content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in content.iter_any():
            seen += len(chunk)
            if self.limit is not None and seen > self.limit:
                raise BodyTooLarge(self.limit)
            yield chunk


@final
class UpstreamProxy:
    def __init__(self, config: ProxyAuthConfig, cookie_names: tuple[str, ...]) -> None:
        self._config = config
        self._cookie_names = cookie_names
        self._pool: UpstreamPool | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def pool(self) -> UpstreamPool:
        if self._pool is None:
            raise RuntimeError("UpstreamProxy.open() has not run")
        return self._pool

    @property
    def session(self) -> aiohttp.ClientSession:
        """aiohttp's client, for WebSocket handshakes only."""
        if self._session is None:
            raise RuntimeError("UpstreamProxy.open() has not run")
        return self._session

    async def open(self) -> None:
        config = self._config
        self._pool = UpstreamPool(
            limit=config.upstream_connections, connect_timeout=config.upstream_connect_timeout,
            idle_timeout=config.upstream_idle_timeout,
        )
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=config.upstream_connections, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(
                total=None, connect=config.upstream_connect_timeout,
                sock_read=config.upstream_idle_timeout,
            ),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def forward(
        self, request: web.BaseRequest, visit: Visit, admission: Admission
    ) -> web.StreamResponse:
        route = visit.route
        if route.upstream is None:
            raise UpstreamUnavailable(route.host, "not_running")
        websocket = is_websocket(request)
        headers = upstream_request_headers(
            request.headers, visit.client, identity=admission.identity,
            cookie_names=self._cookie_names, drop_authorization=admission.drop_authorization,
            websocket=websocket,
        )
        if websocket:
            url = URL(route.upstream + visit.target, encoded=True)
            return await relay_websocket(self.session, request, url, headers, route.host)
        return await self._http(request, route.upstream, visit.target, headers, route.host)

    async def _http(
        self, request: web.BaseRequest, upstream: str, target: str, headers: CIMultiDict[str],
        host: str,
    ) -> web.StreamResponse:
        limit = self._config.max_body_bytes
        length = request.content_length
        if limit and length is not None and length > limit:
            raise BodyTooLarge(limit)
        body: AsyncIterable[bytes] | None = None
        if request.body_exists:
            meter = _BodyMeter(limit or None)
            body = meter.stream(request.content)
        try:
            upstream_response = await self.pool.request(
                request.method, upstream, target, headers.items(), body=body, length=length
            )
        except UpstreamConnectError as exc:
            raise UpstreamUnavailable(host, exc.kind) from exc
        except TimeoutError as exc:
            raise UpstreamUnavailable(host, "timeout") from exc
        except (UpstreamProtocolError, OSError, aiohttp.ClientError) as exc:
            # OSError: the app's connection failed; ClientError: the client's body did.
            raise UpstreamUnavailable(host, "broken") from exc
        async with upstream_response:
            return await self._answer(request, upstream_response, host)

    async def _answer(
        self, request: web.BaseRequest, upstream: UpstreamResponse, host: str
    ) -> web.StreamResponse:
        headers = client_response_headers(upstream.headers, self._cookie_names)
        length = upstream.length
        no_body = request.method == "HEAD" or upstream.status in (204, 304)
        if not no_body and length is not None and length <= SMALL_BODY:
            try:
                body = await upstream.read()
            except (TimeoutError, UpstreamProtocolError) as exc:
                raise UpstreamUnavailable(host, "broken") from exc
            headers.popall("Content-Length", None)
            return web.Response(
                status=upstream.status, reason=upstream.reason, headers=headers, body=body
            )
        if not no_body and length is None:
            headers.popall("Content-Length", None)
        response = web.StreamResponse(
            status=upstream.status, reason=upstream.reason, headers=headers
        )
        await response.prepare(request)
        if no_body:
            return response
        try:
            async for chunk in upstream.chunks():
                await response.write(chunk)
        except (TimeoutError, UpstreamProtocolError) as exc:
            log.warning("%s: the app's answer broke off (%s); closing the client connection",
                        host, type(exc).__name__)
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response
