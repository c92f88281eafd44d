"""Which subject a source address counts under: IPv4 by address, IPv6 by its /64.

One IPv6 host is usually given a whole /64 and can pick any address in it, so counting per
address would give an attacker 2**64 fresh counters; IPv4-mapped IPv6 addresses count as
the IPv4 address they carry. Anything that is not an IP address (a unix socket peer, a
test's label) counts as itself.
"""

from __future__ import annotations

import ipaddress


def source_key(address: str, *, ipv4_prefix: int = 32, ipv6_prefix: int = 64) -> str:
    """The network an address is counted under, as text: ``192.0.2.1``, ``2001:db8::/64``."""
    text = address.strip()
    # A zone id ("fe80::1%eth0") is local detail; brackets come from URLs.
    text = text.removeprefix("[").removesuffix("]").partition("%")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = ipv4_prefix if ip.version == 4 else ipv6_prefix
    if prefix == ip.max_prefixlen:
        return str(ip)
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def is_address(text: str) -> bool:
    """An IP address or network (what ``gateway bans lift`` treats as a source)."""
    try:
        ipaddress.ip_network(text.strip().removeprefix("[").removesuffix("]"), strict=False)
    except ValueError:
        return False
    return True
