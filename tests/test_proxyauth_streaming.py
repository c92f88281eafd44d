"""Bodies and sockets through the wall: WebSocket echo, a 1 GiB upload that is never held in
memory, a streamed download, the body limit. Real client, real wall, real upstream app.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.proxyauth_support import Wall, host, plain_client, running_wall

pytestmark = pytest.mark.asyncio

GIB = 1 << 30
CHUNK = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
async def wall(tmp_path: Path) -> AsyncIterator[Wall]:
    async with running_wall(tmp_path) as running:
        yield running


def resident_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


class MemoryWatch:
    """Samples this process's resident memory while a transfer runs; keeps the peak."""

    def __init__(self, every: float = 0.02) -> None:
        self.every = every
        self.baseline = resident_bytes()
        self.peak = self.baseline
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, resident_bytes())
            await asyncio.sleep(self.every)

    def __enter__(self) -> MemoryWatch:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.peak = max(self.peak, resident_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


async def generated(total: int, chunk: int = CHUNK) -> AsyncIterator[bytes]:
    block = os.urandom(chunk)
    sent = 0
    while sent < total:
        piece = block[: min(chunk, total - sent)]
        sent += len(piece)
        yield piece


# -- WebSocket ----------------------------------------------------------------------------


async def test_websocket_echo_through_the_wall(wall: Wall) -> None:
    async with plain_client() as client:
        token = await wall.login(client, "whole", "alice")
        async with client.ws_connect(
            wall.url("/_ws"), protocols=("echo.v1", "other"),
            headers={"Host": host("whole"), **wall.session_header(token),
                     "X-Remote-User": "mallory"},
        ) as ws:
            assert ws.protocol == "echo.v1"
            hello = await ws.receive_json(timeout=10)
            seen = {k.lower(): v for k, v in hello["headers"].items()}
            assert seen["x-remote-user"] == "alice"
            assert wall.cookie_name not in seen.get("cookie", "")
            for n in range(50):
                await ws.send_str(f"message {n}")
                assert (await ws.receive_str(timeout=10)) == f"echo:message {n}"
            big = os.urandom(3 * CHUNK)
            await ws.send_bytes(big)
            assert (await ws.receive_bytes(timeout=10)) == big[::-1]
            await ws.send_str("close")
            closing = await ws.receive(timeout=10)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 4001


async def test_websocket_handshake_is_walled(wall: Wall) -> None:
    async with plain_client() as client:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(wall.url("/_ws"), headers={"Host": host("whole")})
        assert refused.value.status == 401


async def test_client_closing_a_websocket_closes_the_apps_side(wall: Wall) -> None:
    async with plain_client() as client:
        token = await wall.login(client, "whole", "alice")
        ws = await client.ws_connect(
            wall.url("/_ws"), headers={"Host": host("whole"), **wall.session_header(token)}
        )
        await ws.receive_json(timeout=10)
        await ws.send_str("ping")
        assert await ws.receive_str(timeout=10) == "echo:ping"
        await ws.close(code=4321)
        assert ws.closed


# -- bodies -----------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_1_gib_upload_streams_through_without_being_buffered(wall: Wall) -> None:
    async with plain_client() as client:
        token = await wall.login(client, "whole", "alice")
        with MemoryWatch() as memory:
            answer = await client.post(
                wall.url("/_upload"), data=generated(GIB),
                headers={"Host": host("whole"), **wall.session_header(token),
                         "Content-Length": str(GIB), "Content-Type": "application/octet-stream"},
                timeout=aiohttp.ClientTimeout(total=600),
            )
            result = await answer.json()
    assert answer.status == 200
    assert result == {"bytes": GIB, "chunked": False, "length": str(GIB)}
    # Client, wall and app share this process: all three together stay far below the body.
    assert memory.growth < 64 * CHUNK, f"resident memory grew by {memory.growth >> 20} MiB"


async def test_a_chunked_upload_stays_chunked(wall: Wall) -> None:
    async with plain_client() as client:
        token = await wall.login(client, "whole", "alice")
        answer = await client.post(
            wall.url("/_upload"), data=generated(32 * CHUNK, chunk=100_000),
            headers={"Host": host("whole"), **wall.session_header(token)},
        )
        result = await answer.json()
    assert result == {"bytes": 32 * CHUNK, "chunked": True, "length": None}


async def test_a_large_download_streams_back(wall: Wall) -> None:
    size = 256 * CHUNK + 123
    async with plain_client() as client:
        token = await wall.login(client, "whole", "alice")
        with MemoryWatch() as memory:
            answer = await client.get(
                wall.url(f"/_download?bytes={size}"),
                headers={"Host": host("whole"), **wall.session_header(token)},
            )
            received = 0
            async for chunk in answer.content.iter_any():
                received += len(chunk)
    assert answer.status == 200
    assert received == size
    assert memory.growth < 64 * CHUNK


async def test_the_body_limit(tmp_path: Path) -> None:
    async with running_wall(tmp_path, max_body_bytes=CHUNK) as wall, plain_client() as client:
        token = await wall.login(client, "whole", "alice")
        headers = {"Host": host("whole"), **wall.session_header(token)}
        declared = await client.post(
            wall.url("/_upload"), data=b"x" * (CHUNK + 1), headers=headers
        )
        assert declared.status == 413
        streamed = await client.post(
            wall.url("/_upload"), data=generated(4 * CHUNK, chunk=65536), headers=headers
        )
        assert streamed.status == 413
        fits = await client.post(wall.url("/_upload"), data=b"x" * CHUNK, headers=headers)
        assert (await fits.json())["bytes"] == CHUNK
    assert wall.upstream.uploaded[-1] == CHUNK


async def test_expect_100_continue_is_answered_after_the_walls_decision(wall: Wall) -> None:
    """curl asks before a large upload. A refused client hears the refusal, not "go on",
    so nothing is sent in vain; an admitted one gets 100 Continue, then the app's answer."""
    body = b"x" * 1000

    async def ask(extra: str) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", wall.port)
        writer.write(
            f"POST /_upload HTTP/1.1\r\nHost: {host('whole')}\r\nContent-Length: {len(body)}\r\n"
            f"Expect: 100-continue\r\nContent-Type: application/octet-stream\r\n{extra}\r\n"
            .encode()
        )
        await writer.drain()
        first = await asyncio.wait_for(reader.readline(), 10)
        return first, reader, writer

    first, _, writer = await ask("Accept: application/json\r\n")
    writer.close()
    assert first.startswith(b"HTTP/1.1 401 "), first

    async with plain_client() as client:
        token = await wall.login(client, "whole", "alice")
    first, reader, writer = await ask(f"Cookie: {wall.session_header(token)['Cookie']}\r\n")
    try:
        assert first == b"HTTP/1.1 100 Continue\r\n", first
        assert await asyncio.wait_for(reader.readline(), 10) == b"\r\n"
        writer.write(body)
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 10)
        assert status.startswith(b"HTTP/1.1 200 "), status
    finally:
        writer.close()
