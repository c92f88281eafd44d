"""One HTTP/1.1 connection to an app: write a request, read its response as a stream.

The wall's hot path is "parse a request, judge it, pass it on": a general client (aiohttp's
``ClientSession``, with cookies, redirects, auth, proxies, tracing) cost more per request
than the rest of the wall together. This protocol does only what a reverse proxy needs:
one exchange at a time on a keep-alive connection, bodies framed by ``Content-Length``,
chunked encoding or the close of the connection, and flow control both ways (reading
pauses when the client is slower than the app; writing waits when the app is slower than
the client). Anything it does not understand (a malformed head, both framings at once) is
an error, never a guess: the response is refused and the connection closed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Literal, cast

from multidict import CIMultiDict

# A response head larger than this is refused (nginx's default large_client_header_buffers
# allow 32 KiB for a request; apps answer with less).
MAX_HEAD = 64 * 1024
# Body bytes queued before reading from the app pauses, and the level it resumes at.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024

State = Literal["idle", "head", "length", "chunked", "eof", "done", "broken"]
NO_BODY_STATUS = frozenset({204, 304})


class UpstreamProtocolError(Exception):
    """The app's answer broke HTTP/1.1 framing (or the connection broke mid-answer)."""


@dataclass
class ResponseHead:
    status: int
    reason: str
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    length: int | None = None
    keep_alive: bool = True


def _parse_head(data: bytes) -> ResponseHead:
    lines = data.split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code, _, reason = rest.partition(b" ")
    if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise UpstreamProtocolError("malformed status line")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
            raise UpstreamProtocolError("malformed header line")
        headers.add(name.decode("latin-1"), value.strip().decode("latin-1"))
    head = ResponseHead(int(code), reason.decode("latin-1"), headers)
    connection = headers.get("Connection", "").lower()
    head.keep_alive = version == b"HTTP/1.1" and "close" not in connection
    return head


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, idle_timeout: float) -> None:
        self._loop = loop
        self._idle_timeout = idle_timeout
        self.transport: asyncio.Transport | None = None
        self.state: State = "idle"
        self.last_used = loop.time()
        self._buf = bytearray()
        self._head: asyncio.Future[ResponseHead] | None = None
        self._expect_body = True
        self._remaining = 0
        self._chunk_phase: Literal["size", "data", "crlf", "trailers"] = "size"
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._reading_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_activity = 0.0
        self._can_write = asyncio.Event()
        self._can_write.set()

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports quack like asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        if self.state == "eof":
            self._finish()
        elif self.state not in ("idle", "done", "broken"):
            self._fail(UpstreamProtocolError("the app closed the connection mid-answer"))
        self.state = "broken"
        self._can_write.set()
        self.transport = None

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def data_received(self, data: bytes) -> None:
        if self.state in ("idle", "done", "broken"):
            # Nothing was asked: an app talking out of turn cannot be trusted with the next.
            self._break()
            return
        self._arm_timer()
        if self.state == "eof" or (self.state == "length" and not self._buf):
            self._body_bytes(data)
            return
        self._buf += data
        try:
            self._advance()
        except UpstreamProtocolError as exc:
            self._fail(exc)
            self._break()

    # -- one exchange --------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        return self.state == "done" and self.transport is not None and not self._buf

    def start(self, head: bytes, *, expect_body: bool) -> asyncio.Future[ResponseHead]:
        """Send a request head; answer a future of the response head."""
        if self.transport is None or self.state not in ("idle", "done"):
            raise ConnectionResetError("the connection cannot take a request now")
        self.state = "head"
        self._expect_body = expect_body
        self._queue.clear()
        self._queued = 0
        self._error = None
        self._head = self._loop.create_future()
        self.transport.write(head)
        self._arm_timer()
        return self._head

    async def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("the app closed the connection")
        self.transport.write(data)
        if not self._can_write.is_set():
            await self._can_write.wait()

    async def read(self) -> bytes | None:
        """The next piece of the response body; None at its end."""
        while not self._queue:
            if self._error is not None:
                raise self._error
            if self.state in ("done", "broken"):
                return None
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunk = self._queue.popleft()
        self._queued -= len(chunk)
        if self._reading_paused and self._queued < LOW_WATER and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
            if self.state in ("length", "chunked", "eof"):
                self._arm_timer()
        return chunk

    def close(self) -> None:
        self._cancel_timer()
        if self.transport is not None:
            self.transport.close()
        self.state = "broken"

    # -- parsing -------------------------------------------------------------------------

    def _advance(self) -> None:
        while True:
            if self.state == "head":
                if not self._read_head():
                    return
            elif self.state == "length":
                if self._buf:
                    data = bytes(self._buf)
                    self._buf.clear()
                    self._body_bytes(data)
                return
            elif self.state == "chunked":
                if not self._read_chunked():
                    return
            elif self.state == "eof":
                data = bytes(self._buf)
                self._buf.clear()
                self._body_bytes(data)
                return
            else:
                if self._buf:
                    raise UpstreamProtocolError("bytes after the end of the answer")
                return

    def _read_head(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD:
                raise UpstreamProtocolError("response head too large")
            return False
        head = _parse_head(bytes(self._buf[:end]))
        del self._buf[: end + 4]
        if 100 <= head.status < 200:
            return True  # informational (103 Early Hints …): the real answer follows
        encoding = head.headers.get("Transfer-Encoding")
        lengths = head.headers.getall("Content-Length", [])
        if encoding is not None and lengths:
            # Both framings: the classic request-smuggling shape. Refuse it.
            raise UpstreamProtocolError("both Transfer-Encoding and Content-Length")
        if len(set(lengths)) > 1 or (lengths and not lengths[0].strip().isdigit()):
            raise UpstreamProtocolError("bad Content-Length")
        if not self._expect_body or head.status in NO_BODY_STATUS:
            head.length = int(lengths[0]) if lengths else None
            self._settle(head)
            self._finish()
            return True
        if encoding is not None:
            if encoding.strip().lower() != "chunked":
                raise UpstreamProtocolError(f"unsupported Transfer-Encoding {encoding!r}")
            self.state = "chunked"
            self._chunk_phase = "size"
        elif lengths:
            head.length = self._remaining = int(lengths[0])
            self.state = "length"
        else:
            head.keep_alive = False
            self.state = "eof"
        self._settle(head)
        if self.state == "length" and self._remaining == 0:
            self._finish()
        return True

    def _read_chunked(self) -> bool:
        buf = self._buf
        if self._chunk_phase == "size":
            end = buf.find(b"\r\n")
            if end < 0:
                if len(buf) > 1024:
                    raise UpstreamProtocolError("chunk size line too long")
                return False
            size_text = bytes(buf[:end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise UpstreamProtocolError("bad chunk size") from None
            del buf[: end + 2]
            if size == 0:
                self._chunk_phase = "trailers"
            else:
                self._remaining = size
                self._chunk_phase = "data"
            return True
        if self._chunk_phase == "data":
            if not buf:
                return False
            take = min(self._remaining, len(buf))
            self._push(bytes(buf[:take]))
            del buf[:take]
            self._remaining -= take
            if self._remaining == 0:
                self._chunk_phase = "crlf"
            return True
        if self._chunk_phase == "crlf":
            if len(buf) < 2:
                return False
            if buf[:2] != b"\r\n":
                raise UpstreamProtocolError("missing CRLF after a chunk")
            del buf[:2]
            self._chunk_phase = "size"
            return True
        # Trailers: none ("\r\n") or header lines up to an empty line; dropped.
        if buf[:2] == b"\r\n":
            del buf[:2]
        else:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise UpstreamProtocolError("trailers too large")
                return False
            del buf[: end + 4]
        self._finish()
        return True

    def _body_bytes(self, data: bytes) -> None:
        if self.state == "eof":
            self._push(data)
            return
        take = min(self._remaining, len(data))
        if take:
            self._push(data[:take] if take < len(data) else data)
        self._remaining -= take
        if self._remaining == 0:
            if take < len(data):
                self._break()
                return
            self._finish()

    def _push(self, chunk: bytes) -> None:
        self._queue.append(chunk)
        self._queued += len(chunk)
        self._wake()
        if self._queued > HIGH_WATER and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()
            # The client is the slow one now: the app's silence is ours, not a timeout.
            self._cancel_timer()

    # -- ends ----------------------------------------------------------------------------

    def _settle(self, head: ResponseHead) -> None:
        if self._head is not None and not self._head.done():
            self._head.set_result(head)

    def _finish(self) -> None:
        self.state = "done"
        self._cancel_timer()
        self.last_used = self._loop.time()
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        if self._head is not None and not self._head.done():
            self._head.set_exception(exc)
        self._wake()

    def _break(self) -> None:
        self.close()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _arm_timer(self) -> None:
        # One timer per silence, not per packet: data only moves the activity mark, and the
        # timer, when it fires early, re-arms itself for what is left.
        self._last_activity = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_at(
                self._last_activity + self._idle_timeout, self._timed_out
            )

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        due = self._last_activity + self._idle_timeout
        if self._loop.time() < due:
            self._timer = self._loop.call_at(due, self._timed_out)
            return
        if self.state in ("head", "length", "chunked", "eof"):
            self._fail(TimeoutError("the app went silent"))
            self.close()
