"""Where a recipient domain's mail goes: its MX hosts, in preference order (RFC 5321 §5.1).

No MX record: the domain itself is the implicit MX (its A/AAAA records). A null MX
(``0 .``, RFC 7505) or a domain that does not exist: permanent failure. A lookup that times
out or fails (SERVFAIL): temporary, retried later. Answers are cached for their TTL.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver


class DnsTemporary(Exception):
    """The lookup could not be answered now; try again later."""


class DnsPermanent(Exception):
    """The domain has no way to receive mail."""


@dataclass(frozen=True)
class MxHost:
    name: str
    preference: int
    addresses: tuple[str, ...]


class MxResolver:
    def __init__(
        self, *, nameserver: str | None = None, port: int = 53, timeout: float = 10.0
    ) -> None:
        resolver = dns.asyncresolver.Resolver(configure=nameserver is None)
        if nameserver is not None:
            resolver.nameservers = [nameserver]
            resolver.port = port
        resolver.lifetime = timeout
        resolver.cache = dns.resolver.Cache()
        self._resolver = resolver

    async def hosts(self, domain: str) -> list[MxHost]:
        """The MX hosts of ``domain`` with their addresses, best first; hosts with no
        address are left out, and none at all is a temporary failure."""
        literal = _address_literal(domain)
        if literal is not None:
            return [MxHost(domain, 0, (literal,))]
        try:
            answer = await self._resolver.resolve(domain, "MX")
            records = sorted(
                ((r.preference, random.random(), r.exchange.to_text(omit_final_dot=True))
                 for r in answer),
            )
        except dns.resolver.NXDOMAIN as exc:
            raise DnsPermanent(f"domain {domain} does not exist") from exc
        except dns.resolver.NoAnswer:
            records = [(0, 0.0, domain)]  # RFC 5321 §5.1: the implicit MX
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise DnsTemporary(f"MX lookup for {domain} failed: {exc}") from exc
        except dns.exception.DNSException as exc:
            raise DnsTemporary(f"MX lookup for {domain} failed: {exc}") from exc
        if len(records) == 1 and records[0][2] in ("", "."):
            raise DnsPermanent(f"domain {domain} accepts no mail (null MX, RFC 7505)")
        hosts: list[MxHost] = []
        for preference, _, name in records:
            if name in ("", "."):
                continue
            found = await self._addresses(name)
            if found:
                hosts.append(MxHost(name, preference, tuple(found)))
        if not hosts:
            raise DnsTemporary(f"no address for any MX host of {domain}")
        return hosts

    async def _addresses(self, name: str) -> list[str]:
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self._resolver.resolve(name, rdtype)
            except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                continue
            except dns.exception.DNSException:
                continue
            found.extend(r.to_text() for r in answer)
        return found


def _address_literal(domain: str) -> str | None:
    """``[192.0.2.1]`` or ``[IPv6:2001:db8::1]`` (RFC 5321 §4.1.3) → the address."""
    if not (domain.startswith("[") and domain.endswith("]")):
        return None
    inner = domain[1:-1]
    if inner.lower().startswith("ipv6:"):
        inner = inner[5:]
    try:
        return str(ipaddress.ip_address(inner))
    except ValueError:
        return None
