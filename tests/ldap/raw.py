"""A raw LDAP client over asyncio streams: send any bytes, read back decoded messages, see
whether the server closed. For the robustness tests, where real clients are too polite."""

from __future__ import annotations

import asyncio
from typing import Any

from ldaptor.protocols import pureber, pureldap

READ_TIMEOUT = 10.0

DECODER = pureldap.LDAPBERDecoderContext_TopLevel(
    inherit=pureldap.LDAPBERDecoderContext_LDAPMessage(
        fallback=pureldap.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext()),
        inherit=pureldap.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext()),
    )
)


def encode(op: Any, message_id: int = 1, controls: Any = None) -> bytes:
    return bytes(pureldap.LDAPMessage(op, id=message_id, controls=controls).toWire())


def search_request(base: str = "ou=users,dc=cloudron", flt: Any = None, **kw: Any) -> Any:
    return pureldap.LDAPSearchRequest(
        baseObject=base, filter=flt or pureldap.LDAPFilter_present("objectClass"), **kw
    )


def bind_request(dn: str, password: str) -> Any:
    return pureldap.LDAPBindRequest(dn=dn, auth=password)


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._buffer = b""

    @classmethod
    async def connect(cls, host: str, port: int, **kw: Any) -> RawClient:
        reader, writer = await asyncio.open_connection(host, port, **kw)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def message(self, timeout: float = READ_TIMEOUT) -> Any | None:
        """The next message, or None when the server closed the connection."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._buffer:
                try:
                    decoded, used = pureber.berDecodeObject(DECODER, self._buffer)
                except pureber.BERExceptionInsufficientData:
                    decoded, used = None, 0
                if decoded is not None:
                    self._buffer = self._buffer[used:]
                    return decoded
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("no answer from the server")
            chunk = await asyncio.wait_for(self.reader.read(65536), remaining)
            if not chunk:
                return None
            self._buffer += chunk

    async def closed(self, timeout: float = READ_TIMEOUT) -> bool:
        """True once the server has closed (EOF or reset) within ``timeout``."""
        try:
            while True:
                chunk = await asyncio.wait_for(self.reader.read(65536), timeout)
                if not chunk:
                    return True
        except (ConnectionError, OSError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.writer.close()
