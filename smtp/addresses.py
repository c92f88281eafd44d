"""Mail addresses as the relay compares them: lowercased, split once, ``+tag`` removed.

RFC 5321 §2.4 lets a host treat local parts case-sensitively; like every mainstream MTA
this relay does not, so ``Alice@Example.com`` and ``alice@example.com`` are one sender.
"""

from __future__ import annotations

# RFC 5321 §4.5.3.1: local part 64 octets, domain 255, path 256.
MAX_LOCAL = 64
MAX_DOMAIN = 255
SUBADDRESS_SEPARATOR = "+"


def split(address: str) -> tuple[str, str] | None:
    """``(local, domain)`` of a plain ``local@domain`` address, or None."""
    local, at, domain = address.strip().lower().rpartition("@")
    if not at or not local or not domain:
        return None
    if len(local) > MAX_LOCAL or len(domain) > MAX_DOMAIN:
        return None
    literal = domain.startswith("[") and domain.endswith("]")
    if not literal and any(c.isspace() or c in '<>(),;:\\"[]' for c in domain):
        return None
    if any(c.isspace() or c in "<>" for c in local):
        return None
    return local, domain


def without_tag(local: str) -> str:
    """``user+tag`` → ``user`` (subaddressing, RFC 5233)."""
    return local.split(SUBADDRESS_SEPARATOR, 1)[0]


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()
