"""WebSockets through the wall: the handshake is judged like any request, then messages are
relayed both ways until either side closes.

The wall opens the app's side first, offering the client's subprotocols, and accepts the
client with the one the app chose, so an app that refuses the handshake (its own 403, say)
is answered with that status instead of an accepted socket that closes at once.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import WSMsgType, web
from multidict import CIMultiDict
from yarl import URL

from proxyauth.errors import UpstreamUnavailable

log = logging.getLogger(__name__)

# Seconds the other side gets to see a close frame once one side has closed.
CLOSE_WAIT = 5.0
# aiohttp holds a whole message in memory before passing it on: bound it (its default is
# 4 MiB; apps that stream files over a socket send bigger frames than chat apps).
MAX_MESSAGE = 16 * 1024 * 1024
_CLOSING = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


def is_websocket(request: web.BaseRequest) -> bool:
    if request.method != "GET":
        return False
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return False
    connection = request.headers.get("Connection", "").lower()
    return "upgrade" in (token.strip() for token in connection.split(","))


async def relay_websocket(
    session: aiohttp.ClientSession,
    request: web.BaseRequest,
    url: URL,
    headers: CIMultiDict[str],
    host: str,
) -> web.StreamResponse:
    offered = [
        p.strip()
        for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
        if p.strip()
    ]
    ws_url = url.with_scheme("wss" if url.scheme == "https" else "ws")
    try:
        app_side = await session.ws_connect(
            ws_url, headers=headers, protocols=offered, autoclose=False, autoping=True,
            max_msg_size=MAX_MESSAGE, compress=0,
        )
    except aiohttp.WSServerHandshakeError as exc:
        # The app refused the upgrade: pass its status on (no body: aiohttp keeps none).
        return web.Response(status=exc.status or 502, text=exc.message or "")
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise UpstreamUnavailable(host, "timeout") from exc
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamUnavailable(host, "refused") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamUnavailable(host, "broken") from exc
    client_side = web.WebSocketResponse(
        protocols=(app_side.protocol,) if app_side.protocol else (),
        autoclose=False, autoping=True, max_msg_size=MAX_MESSAGE,
    )
    try:
        await client_side.prepare(request)
        await _relay(client_side, app_side)
    finally:
        await app_side.close()
    return client_side


async def _relay(client: web.WebSocketResponse, app: aiohttp.ClientWebSocketResponse) -> None:
    async def client_to_app() -> None:
        async for msg in client:
            if msg.type == WSMsgType.TEXT:
                await app.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await app.send_bytes(msg.data)
            elif msg.type in _CLOSING:
                break
        await app.close(code=client.close_code or aiohttp.WSCloseCode.OK)

    async def app_to_client() -> None:
        async for msg in app:
            if msg.type == WSMsgType.TEXT:
                await client.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await client.send_bytes(msg.data)
            elif msg.type in _CLOSING:
                break
        await client.close(code=app.close_code or aiohttp.WSCloseCode.OK)

    tasks = [
        asyncio.create_task(client_to_app(), name="ws-client-to-app"),
        asyncio.create_task(app_to_client(), name="ws-app-to-client"),
    ]
    try:
        _done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        # One side closed: give the other a moment to see its close frame, then stop.
        await asyncio.wait(pending, timeout=CLOSE_WAIT)
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            # A peer that vanished mid-message is how sockets end; anything else is a bug.
            if isinstance(result, Exception) and not isinstance(
                result, ConnectionError | aiohttp.ClientError
            ):
                log.warning("websocket relay ended with %r", result)
