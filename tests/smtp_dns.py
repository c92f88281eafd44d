"""A tiny authoritative DNS server on loopback UDP, for MX lookups in the mail tests.

Names it knows answer their records (or an empty NOERROR for other types); names it does
not know answer NXDOMAIN. Built with dnspython's message helpers.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import dns.flags
import dns.message
import dns.rcode
import dns.rrset


class DnsServer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.queries = 0

    def mx(self, domain: str, host: str, preference: int = 10) -> None:
        self.records[(domain.lower(), "MX")].append(f"{preference} {host}.")

    def a(self, name: str, address: str = "127.0.0.1") -> None:
        self.records[(name.lower(), "A")].append(address)

    def txt(self, name: str, value: str) -> None:
        self.records[(name.lower(), "TXT")].append(value)

    def lookup_txt(self, name: str) -> str | None:
        found = self.records.get((name.lower().rstrip("."), "TXT"))
        return found[0] if found else None

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )
        self.transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        return self.port

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.queries += 1
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        known_names = {name for name, _ in self.records}
        for question in query.question:
            name = question.name.to_text(omit_final_dot=True).lower()
            rdtype = dns.rdatatype.to_text(question.rdtype)
            values = self.records.get((name, rdtype))
            if values:
                if rdtype == "TXT":
                    values = ['"' + v.replace('"', '\\"') + '"' for v in values]
                response.answer.append(
                    dns.rrset.from_text(question.name, 60, "IN", rdtype, *values)
                )
            elif name not in known_names:
                response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)
