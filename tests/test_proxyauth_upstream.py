"""The wall's HTTP/1.1 exchange with apps that answer exactly the bytes a test writes: every
framing (length, chunked with trailers, until close), informational answers, early answers
to uploads, stale keep-alive connections, and the malformed answers that must be refused.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.proxyauth_support import Wall, host, plain_client, running_wall

pytestmark = pytest.mark.asyncio


class ScriptedApp:
    """An app on a raw socket: for each request head, ``answer(path)`` gives the bytes."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.requests: list[bytes] = []
        self.connections = 0
        self.answers: dict[str, object] = {}

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.requests.append(head)
                path = head.split(b" ")[1].decode()
                answer = self.answers[path]
                if callable(answer):
                    if await answer(head, reader, writer) is False:
                        return
                else:
                    writer.write(answer)  # type: ignore[arg-type]
                    await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def scripted(tmp_path: Path) -> AsyncIterator[tuple[Wall, ScriptedApp]]:
    app = ScriptedApp()
    url = await app.start()
    async with running_wall(tmp_path, upstream_idle_timeout=1.0) as wall:
        await wall.store.apps.update(wall.apps["plain"].id, upstream=url)
        await wall.settled()
        try:
            yield wall, app
        finally:
            await app.stop()


async def get(wall: Wall, path: str, **kwargs: object) -> aiohttp.ClientResponse:
    client = plain_client()
    async with client:
        response = await client.request(
            str(kwargs.pop("method", "GET")), wall.url(path),
            headers={"Host": host("plain")}, **kwargs,  # type: ignore[arg-type]
        )
        await response.read()
        return response


async def test_every_framing_reaches_the_client(scripted: tuple[Wall, ScriptedApp]) -> None:
    wall, app = scripted
    app.answers["/length"] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-App: 1\r\n\r\nhello"
    app.answers["/chunked"] = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    app.answers["/early-hints"] = (
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    app.answers["/nothing"] = b"HTTP/1.1 204 No Content\r\n\r\n"

    async def until_close(head: bytes, reader: object, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"z" * 200_000)
        await writer.drain()
        return False

    app.answers["/until-close"] = until_close
    for path, status, body in [
        ("/length", 200, b"hello"), ("/chunked", 200, b"hello world"),
        ("/early-hints", 200, b"ok"), ("/nothing", 204, b""),
        ("/until-close", 200, b"z" * 200_000), ("/length", 200, b"hello"),
    ]:
        response = await get(wall, path)
        assert (response.status, await response.read()) == (status, body), path
    # Keep-alive: the five answers that allowed it came over one connection.
    assert app.connections == 2


async def test_malformed_answers_are_refused(scripted: tuple[Wall, ScriptedApp]) -> None:
    wall, app = scripted
    app.answers["/smuggle"] = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    app.answers["/garbage"] = b"HTTP/1.1 2000 What\r\n\r\n"
    app.answers["/two-lengths"] = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
    )
    for path in ("/smuggle", "/garbage", "/two-lengths"):
        response = await get(wall, path)
        assert response.status == 502, path
        assert "The app is not reachable" in await response.text()


async def test_an_answer_that_breaks_off_truncates_the_client(
    scripted: tuple[Wall, ScriptedApp],
) -> None:
    wall, app = scripted

    async def broken(head: bytes, reader: object, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"a" * 100_000)
        await writer.drain()
        return False

    app.answers["/broken"] = broken
    async with plain_client() as client:
        response = await client.get(wall.url("/broken"), headers={"Host": host("plain")})
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def test_a_silent_app_times_out(scripted: tuple[Wall, ScriptedApp]) -> None:
    wall, app = scripted
    stall = asyncio.Event()

    async def silent(head: bytes, reader: object, writer: asyncio.StreamWriter) -> bool:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stall.wait(), 10)
        return False

    app.answers["/silent"] = silent
    response = await get(wall, "/silent")
    stall.set()
    assert response.status == 504


async def test_a_stale_keep_alive_connection_is_retried_once(
    scripted: tuple[Wall, ScriptedApp],
) -> None:
    wall, app = scripted

    async def answer_then_hang_up(
        head: bytes, reader: object, writer: asyncio.StreamWriter
    ) -> bool:
        # Says keep-alive, then closes anyway (as an app server's idle timeout does).
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        return False

    app.answers["/flaky"] = answer_then_hang_up
    for _ in range(5):
        response = await get(wall, "/flaky")
        assert response.status == 200
    assert app.connections == 5


async def test_an_app_may_answer_an_upload_early(scripted: tuple[Wall, ScriptedApp]) -> None:
    wall, app = scripted

    async def refuse(
        head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n"
                     b"Connection: close\r\n\r\nbig!")
        await writer.drain()
        # A lingering close, as servers do: closing with the upload unread would reset the
        # connection, and the answer with it.
        while await reader.read(65536):
            pass
        return False

    app.answers["/upload"] = refuse

    async def body() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b"u" * 65536

    response = await get(wall, "/upload", method="POST", data=body())
    assert response.status == 413
    assert await response.read() == b"big!"


async def test_request_framing_to_the_app(scripted: tuple[Wall, ScriptedApp]) -> None:
    wall, app = scripted

    async def consume(
        head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        lowered = head.lower()
        if b"transfer-encoding: chunked" in lowered:
            data = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    break
                data += chunk[:-2]
        else:
            length = int(lowered.split(b"content-length: ")[1].split(b"\r\n")[0])
            data = await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(data), data))
        await writer.drain()
        return True

    app.answers["/echo"] = consume

    async def body() -> AsyncIterator[bytes]:
        yield b"one,"
        yield b"two"

    chunked = await get(wall, "/echo", method="POST", data=body())
    assert await chunked.read() == b"one,two"
    sized = await get(wall, "/echo", method="PUT", data=b"0123456789")
    assert await sized.read() == b"0123456789"
    empty = await get(wall, "/echo", method="POST")
    assert await empty.read() == b""
    heads = [h.lower() for h in app.requests]
    assert b"transfer-encoding: chunked" in heads[0]
    assert b"content-length: 10" in heads[1]
    assert b"content-length: 0" in heads[2]
