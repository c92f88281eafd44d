"""Keep-alive connections to the apps, and one request/response exchange over them.

``UpstreamPool.request`` writes the request head, streams the body (if any) while it waits
for the answer, and hands back an ``UpstreamResponse`` whose body is read as it arrives.
A connection goes back to the pool only when its answer was read to the end and the app
did not ask to close; one idle for longer than ``KEEP_IDLE`` is not reused (some app
servers drop idle connections after 2 s, and a request written into a closing connection
is lost). A bodiless request that meets a dead reused connection before any answer is
sent once more on a new one; nothing else is ever retried.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import final
from urllib.parse import urlsplit

from multidict import CIMultiDict

from proxyauth.http1 import ResponseHead, UpstreamConnection, UpstreamProtocolError

# Seconds an idle keep-alive connection is trusted to still be open (gunicorn's default
# keep-alive is 2 s; most servers allow far more).
KEEP_IDLE = 1.5
Origin = tuple[str, str, int]


class UpstreamConnectError(Exception):
    """The app could not be reached: ``kind`` is ``refused`` or ``timeout``."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def origin_of(upstream: str) -> Origin:
    parts = urlsplit(upstream)
    scheme = parts.scheme or "http"
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) upstream: {upstream!r}")
    return scheme, parts.hostname, parts.port or (443 if scheme == "https" else 80)


@final
class UpstreamResponse:
    def __init__(
        self,
        pool: UpstreamPool,
        origin: Origin,
        conn: UpstreamConnection,
        head: ResponseHead,
        writer: asyncio.Task[None] | None,
    ) -> None:
        self._pool = pool
        self._origin = origin
        self._conn = conn
        self._writer = writer
        self.status = head.status
        self.reason = head.reason
        self.headers: CIMultiDict[str] = head.headers
        self.length = head.length
        self._keep_alive = head.keep_alive
        self._released = False

    async def read(self) -> bytes:
        parts = [chunk async for chunk in self.chunks()]
        return b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        while (chunk := await self._conn.read()) is not None:
            yield chunk

    def release(self) -> None:
        """Give the connection back if the exchange ended cleanly, else close it."""
        if self._released:
            return
        self._released = True
        writer = self._writer
        sent = writer is None or (writer.done() and not writer.cancelled()
                                  and writer.exception() is None)
        if writer is not None and not writer.done():
            writer.cancel()
        if sent and self._keep_alive and self._conn.reusable:
            self._pool._put(self._origin, self._conn)
        else:
            self._conn.close()
        self._pool._slots.release()

    async def __aenter__(self) -> UpstreamResponse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


@final
class UpstreamPool:
    def __init__(self, *, limit: int, connect_timeout: float, idle_timeout: float) -> None:
        self._connect_timeout = connect_timeout
        self._idle_timeout = idle_timeout
        self._slots = asyncio.Semaphore(limit)
        self._idle: dict[Origin, deque[UpstreamConnection]] = {}
        self._origins: dict[str, Origin] = {}
        self._tls: ssl.SSLContext | None = None

    async def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    async def request(
        self,
        method: str,
        upstream: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        *,
        body: AsyncIterable[bytes] | None = None,
        length: int | None = None,
    ) -> UpstreamResponse:
        origin = self._origins.get(upstream)
        if origin is None:
            origin = self._origins[upstream] = origin_of(upstream)
        head = _request_head(method, target, headers, body is not None, length)
        await self._slots.acquire()
        try:
            for attempt in (1, 2):
                conn, reused = await self._acquire(origin)
                try:
                    return await self._exchange(origin, conn, head, method, body, length)
                except (UpstreamProtocolError, ConnectionError):
                    conn.close()
                    if reused and body is None and attempt == 1:
                        continue  # a stale keep-alive connection: once more, on a new one
                    raise
                except BaseException:
                    conn.close()
                    raise
            raise AssertionError("unreachable")
        except BaseException:
            self._slots.release()
            raise

    async def _exchange(
        self, origin: Origin, conn: UpstreamConnection, head: bytes, method: str,
        body: AsyncIterable[bytes] | None, length: int | None,
    ) -> UpstreamResponse:
        answer = conn.start(head, expect_body=method != "HEAD")
        writer = None
        if body is not None:
            writer = asyncio.get_running_loop().create_task(
                _send_body(conn, body, chunked=length is None), name="proxyauth-upload"
            )
            waiting: set[asyncio.Future[object]] = {answer, writer}  # type: ignore[arg-type]
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            failure = writer.exception() if writer in done else None
            if failure is not None and not isinstance(failure, ConnectionError):
                # The body could not be read (too large, the client vanished): no answer
                # is coming that means anything. (An app that hung up mid-upload may
                # still have answered first, e.g. a 413: that answer is awaited below.)
                answer.cancel()
                raise failure
        try:
            response_head = await answer
        except BaseException:
            if writer is not None and not writer.done():
                writer.cancel()
            raise
        return UpstreamResponse(self, origin, conn, response_head, writer)

    async def _acquire(self, origin: Origin) -> tuple[UpstreamConnection, bool]:
        idle = self._idle.get(origin)
        loop = asyncio.get_running_loop()
        now = loop.time()
        while idle:
            conn = idle.pop()
            if conn.reusable and now - conn.last_used < KEEP_IDLE:
                return conn, True
            conn.close()
        scheme, host, port = origin
        tls = None
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(
                    lambda: UpstreamConnection(loop, self._idle_timeout), host, port, ssl=tls
                ),
                self._connect_timeout,
            )
        except TimeoutError as exc:
            raise UpstreamConnectError("timeout", f"{host}:{port}") from exc
        except OSError as exc:
            raise UpstreamConnectError("refused", f"{host}:{port}: {exc}") from exc
        return protocol, False

    def _put(self, origin: Origin, conn: UpstreamConnection) -> None:
        self._idle.setdefault(origin, deque()).append(conn)


def _request_head(
    method: str, target: str, headers: Iterable[tuple[str, str]], has_body: bool,
    length: int | None,
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1\r\n"]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers)
    if has_body:
        lines.append(
            f"Content-Length: {length}\r\n" if length is not None
            else "Transfer-Encoding: chunked\r\n"
        )
    elif method in ("POST", "PUT", "PATCH"):
        lines.append("Content-Length: 0\r\n")
    lines.append("\r\n")
    # aiohttp decoded the client's bytes as UTF-8 with surrogateescape: this gives them back.
    return "".join(lines).encode("utf-8", "surrogateescape")


async def _send_body(
    conn: UpstreamConnection, body: AsyncIterable[bytes], *, chunked: bool
) -> None:
    async for chunk in body:
        if not chunk:
            continue
        if chunked:
            await conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        else:
            await conn.write(chunk)
    if chunked:
        await conn.write(b"0\r\n\r\n")
