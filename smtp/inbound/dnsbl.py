"""DNS blocklist lookups for connecting addresses (RFC 5782).

The address is reversed (IPv4 octets; IPv6 nibbles, §2.4) under each configured zone and
asked for A records: an answer in 127.0.0.0/8 means listed, its TXT record says why.
Spamhaus answers 127.255.255.x when it refuses the query (public resolvers, over quota):
that is not a listing. A lookup that times out or fails lets the mail through (logged):
a blocklist outage must not stop all inbound mail.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.resolver

log = logging.getLogger(__name__)

_LISTED = ipaddress.ip_network("127.0.0.0/8")
_REFUSED = ipaddress.ip_network("127.255.255.0/24")


@dataclass(frozen=True)
class Listing:
    zone: str
    code: str
    reason: str | None


def query_name(address: str, zone: str) -> str:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address):
        reversed_part = ".".join(reversed(str(ip).split(".")))
    else:
        reversed_part = ".".join(reversed(ip.exploded.replace(":", "")))
    return f"{reversed_part}.{zone.strip('.')}"


class Dnsbl:
    def __init__(
        self, zones: list[str], *, nameserver: str | None = None, port: int = 53,
        timeout: float = 5.0,
    ) -> None:
        self.zones = [z.strip().strip(".").lower() for z in zones if z.strip()]
        resolver = dns.asyncresolver.Resolver(configure=nameserver is None)
        if nameserver is not None:
            resolver.nameservers = [nameserver]
            resolver.port = port
        resolver.lifetime = timeout
        resolver.cache = dns.resolver.Cache()
        self._resolver = resolver

    async def check(self, address: str) -> Listing | None:
        """The first zone listing ``address``, or None (also when lookups fail)."""
        if not self.zones:
            return None
        try:
            ipaddress.ip_address(address)
        except ValueError:
            return None
        found = await asyncio.gather(*(self._one(address, zone) for zone in self.zones))
        return next((f for f in found if f is not None), None)

    async def _one(self, address: str, zone: str) -> Listing | None:
        name = query_name(address, zone)
        try:
            answer = await self._resolver.resolve(name, "A")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.exception.DNSException as exc:
            log.warning("DNSBL %s: lookup of %s failed (%s); letting it through", zone, address,
                        type(exc).__name__)
            return None
        codes = [r.to_text() for r in answer]
        listed = [c for c in codes if _is_listing(c)]
        if not listed:
            return None
        reason: str | None = None
        try:
            txt = await self._resolver.resolve(name, "TXT")
            reason = " ".join(b"".join(r.strings).decode("utf-8", "replace") for r in txt)[:200]
        except dns.exception.DNSException:
            reason = None
        return Listing(zone, listed[0], reason)


def _is_listing(code: str) -> bool:
    try:
        ip = ipaddress.ip_address(code)
    except ValueError:
        return False
    return ip in _LISTED and ip not in _REFUSED
