"""A small ESMTP client on asyncio streams, for delivery to MX hosts and smarthosts.

Only what delivery needs: EHLO (HELO fallback), STARTTLS, AUTH PLAIN/LOGIN, MAIL, RCPT per
recipient (each reply kept: that is the per-recipient state), DATA with dot-stuffing, QUIT.
Replies are parsed by ``read_reply``, bounded in line length and line count, and fuzzed in
the tests; a server that talks nonsense gets a ``ProtocolError``, which delivery treats as
a temporary failure of that host.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from dataclasses import dataclass

# RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets; be lenient, but bounded.
MAX_REPLY_LINE = 8192
MAX_REPLY_LINES = 100


class ProtocolError(Exception):
    """The peer broke the protocol (bad reply, closed connection, timeout)."""


@dataclass(frozen=True)
class Reply:
    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.lines)

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400

    @property
    def transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return self.code >= 500


def parse_reply_line(line: bytes) -> tuple[int, bool, str]:
    """``(code, last, text)`` of one reply line (RFC 5321 §4.2: ``ddd[ -]text``)."""
    line = line.rstrip(b"\r\n")
    if len(line) < 3 or not line[:3].isdigit() or line[:1] not in b"2345":
        raise ProtocolError(f"not an SMTP reply: {line[:60]!r}")
    separator = line[3:4]
    if separator not in (b"", b" ", b"-"):
        raise ProtocolError(f"not an SMTP reply: {line[:60]!r}")
    text = line[4:].decode("utf-8", errors="replace")
    return int(line[:3]), separator != b"-", text


async def read_reply(reader: asyncio.StreamReader) -> Reply:
    code: int | None = None
    lines: list[str] = []
    while True:
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            raise ProtocolError("connection closed in the middle of a reply") from exc
        except asyncio.LimitOverrunError as exc:
            raise ProtocolError("reply line too long") from exc
        if len(raw) > MAX_REPLY_LINE:
            raise ProtocolError("reply line too long")
        line_code, last, text = parse_reply_line(raw)
        if code is None:
            code = line_code
        elif line_code != code:
            raise ProtocolError("reply lines with different codes")
        lines.append(text)
        if last:
            return Reply(code, tuple(lines))
        if len(lines) >= MAX_REPLY_LINES:
            raise ProtocolError("reply with too many lines")


def dot_stuff(message: bytes) -> bytes:
    """The DATA payload (RFC 5321 §4.5.2): leading dots doubled, ending CRLF . CRLF."""
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    if message.startswith(b"."):
        message = b"." + message
    return message.replace(b"\r\n.", b"\r\n..") + b".\r\n"


class SmtpClient:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._timeout = timeout
        self.extensions: dict[str, str] = {}
        self.tls = False

    @classmethod
    async def connect(
        cls, host: str, port: int, *, connect_timeout: float, reply_timeout: float
    ) -> tuple[SmtpClient, Reply]:
        """Connect and read the greeting."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=MAX_REPLY_LINE + 2), connect_timeout
            )
        except TimeoutError as exc:
            raise ProtocolError(f"connect to {host}:{port} timed out") from exc
        client = cls(reader, writer, reply_timeout)
        try:
            greeting = await client._reply()
        except BaseException:
            client.abort()
            raise
        return client, greeting

    async def _reply(self, wait: float | None = None) -> Reply:
        try:
            return await asyncio.wait_for(read_reply(self._reader), wait or self._timeout)
        except TimeoutError as exc:
            raise ProtocolError("timed out waiting for a reply") from exc
        except (ConnectionError, ssl.SSLError) as exc:
            raise ProtocolError(f"connection lost: {exc}") from exc

    async def command(self, line: str, *, wait: float | None = None) -> Reply:
        if "\r" in line or "\n" in line:
            raise ValueError("an SMTP command is one line")
        try:
            self._writer.write(line.encode("utf-8") + b"\r\n")
            await self._writer.drain()
        except (ConnectionError, ssl.SSLError) as exc:
            raise ProtocolError(f"connection lost: {exc}") from exc
        return await self._reply(wait)

    async def ehlo(self, hostname: str) -> Reply:
        reply = await self.command(f"EHLO {hostname}")
        if reply.permanent:
            reply = await self.command(f"HELO {hostname}")
            self.extensions = {}
            return reply
        self.extensions = {}
        for line in reply.lines[1:]:
            keyword, _, params = line.partition(" ")
            self.extensions[keyword.upper()] = params
        return reply

    async def starttls(self, context: ssl.SSLContext, server_hostname: str | None) -> Reply:
        reply = await self.command("STARTTLS")
        if reply.code != 220:
            return reply
        try:
            await asyncio.wait_for(
                self._writer.start_tls(context, server_hostname=server_hostname), self._timeout
            )
        except (TimeoutError, ssl.SSLError, ConnectionError) as exc:
            raise ProtocolError(f"TLS handshake failed: {exc}") from exc
        self.tls = True
        return reply

    async def auth(self, username: str, password: str) -> Reply:
        mechanisms = self.extensions.get("AUTH", "").upper().split()
        if "PLAIN" in mechanisms or "LOGIN" not in mechanisms:
            token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
            return await self.command(f"AUTH PLAIN {token}")
        reply = await self.command("AUTH LOGIN")
        if reply.code != 334:
            return reply
        reply = await self.command(base64.b64encode(username.encode()).decode())
        if reply.code != 334:
            return reply
        return await self.command(base64.b64encode(password.encode()).decode())

    async def mail(self, sender: str, size: int) -> Reply:
        extra = f" SIZE={size}" if "SIZE" in self.extensions else ""
        if "8BITMIME" in self.extensions:
            extra += " BODY=8BITMIME"
        return await self.command(f"MAIL FROM:<{sender}>{extra}")

    async def rcpt(self, recipient: str) -> Reply:
        return await self.command(f"RCPT TO:<{recipient}>")

    async def data(self, message: bytes) -> Reply:
        reply = await self.command("DATA")
        if reply.code != 354:
            return reply
        try:
            self._writer.write(dot_stuff(message))
            await self._writer.drain()
        except (ConnectionError, ssl.SSLError) as exc:
            raise ProtocolError(f"connection lost: {exc}") from exc
        # RFC 5321 §4.5.3.2.6: wait at least 10 minutes for the reply to the final dot.
        return await self._reply(self._timeout * 2)

    async def quit(self) -> None:
        try:
            await asyncio.wait_for(self.command("QUIT"), min(self._timeout, 5.0))
        except (ProtocolError, TimeoutError, OSError):
            pass
        finally:
            self.abort()

    def abort(self) -> None:
        self._writer.close()
