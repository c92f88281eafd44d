"""Who is asking, through which proxies: ``X-Forwarded-*`` believed only from trusted peers.

With no ``trusted_proxies`` (the default) the TCP peer is the client, the scheme is the
listener's, and the host is the ``Host`` header; a client's own ``X-Forwarded-For`` is
dropped, not passed on. Behind trusted proxies the client is the right-most address in
``X-Forwarded-For`` that is not itself a trusted proxy (what nginx's ``real_ip_recursive``
does), so a client cannot choose its rate-limit key by prepending addresses.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import final

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_PORTS = {"http": 80, "https": 443}
# Trust verdicts remembered; cleared when full (client addresses pass through trusts() too).
_VERDICTS_MAX = 10_000


@dataclass(frozen=True)
class ClientView:
    """One request as its client made it, before any proxy in front of us."""

    peer: str
    client_ip: str
    scheme: str
    host: str
    port: int
    forwarded_for: str
    trusted_peer: bool

    @property
    def host_header(self) -> str:
        """``host[:port]`` as the client's browser wrote it (port left out when default)."""
        shown = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == DEFAULT_PORTS.get(self.scheme):
            return shown
        return f"{shown}:{self.port}"

    @property
    def origin(self) -> str:
        """The origin the client's browser puts in ``Origin`` for this site."""
        return f"{self.scheme}://{self.host_header}"


@functools.lru_cache(maxsize=4096)
@functools.lru_cache(maxsize=4096)
def split_host(value: str) -> tuple[str, int | None]:
    """``host[:port]`` → (lower-case host without a trailing dot, port or None).

    A value that is not a plausible host answers ("", None), which routes nowhere.
    """
    value = value.strip()
    port: int | None = None
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
        elif rest:
            return "", None
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep:
            host = value
        elif port_text.isdigit() and host:
            port = int(port_text)
        else:
            return "", None
    host = host.lower().rstrip(".")
    if not host or any(not (c.isalnum() or c in "-._:") for c in host):
        return "", None
    if port is not None and not 0 < port < 65536:
        return "", None
    return host, port


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@final
class TrustedProxies:
    def __init__(self, cidrs: Iterable[str]) -> None:
        self._networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(c.strip(), strict=False) for c in cidrs
        )
        self._verdicts: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, address: str) -> bool:
        """Whether ``address`` is a trusted proxy; remembered per address string (a proxy
        asks thousands of times a second, from a handful of addresses)."""
        known = self._verdicts.get(address)
        if known is not None:
            return known
        verdict = self._decide(address)
        if len(self._verdicts) >= _VERDICTS_MAX:
            self._verdicts.clear()
        self._verdicts[address] = verdict
        return verdict

    def _decide(self, address: str) -> bool:
        ip = _address(address)
        if ip is None:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self._networks)

    def view(self, request: web.BaseRequest, *, listener_scheme: str = "http") -> ClientView:
        peer = _peer(request)
        headers = request.headers
        if not (self._networks and self.trusts(peer)):
            scheme = "https" if request.transport and request.transport.get_extra_info(
                "sslcontext"
            ) else listener_scheme
            host, port = split_host(headers.get("Host", ""))
            return ClientView(
                peer=peer, client_ip=peer, scheme=scheme, host=host,
                port=port or DEFAULT_PORTS[scheme], forwarded_for=peer, trusted_peer=False,
            )
        # A proxy asking on its own behalf (forward-auth checks) sends no X-Forwarded-For.
        forwarded = headers.get("X-Forwarded-For")
        chain = [a.strip() for a in forwarded.split(",") if a.strip()] if forwarded else []
        chain = [a for a in chain if _address(a) is not None]
        client_index = len(chain) - 1
        while client_index >= 0 and self.trusts(chain[client_index]):
            client_index -= 1
        client_index = max(client_index, 0)
        kept = chain[client_index:]
        client_ip = kept[0] if kept else peer
        proto = headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        scheme = proto if proto in DEFAULT_PORTS else listener_scheme
        host, port = split_host(
            headers.get("X-Forwarded-Host", "").split(",")[0] or headers.get("Host", "")
        )
        port_text = headers.get("X-Forwarded-Port", "").split(",")[0].strip()
        if port_text.isdigit() and 0 < int(port_text) < 65536:
            port = int(port_text)
        return ClientView(
            peer=peer, client_ip=client_ip, scheme=scheme, host=host,
            port=port or DEFAULT_PORTS[scheme],
            forwarded_for=", ".join([*kept, peer]), trusted_peer=True,
        )


def _peer(request: web.BaseRequest) -> str:
    # The connection's peer as aiohttp read it once per connection: asking the transport
    # again costs uvloop a getpeername() system call on every request.
    protocol = request.protocol
    peername = protocol.peername if protocol is not None else None
    if isinstance(peername, tuple | list) and peername:
        return str(peername[0])
    return "unknown"
