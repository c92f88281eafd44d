"""How often one address may post the login form: a token bucket per address, in memory.

This sits in front of the credential check (which has its own lockout, per address and per
account) and costs no password work: it only stops a flood of form posts, like the
``limit_req`` zone Cloudron's nginx put on its login endpoints (10 r/s, burst 5). IPv6
clients are bucketed by /64, since one host usually holds a whole /64.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import final

# Buckets kept; the least recently used go first (a flood of fresh addresses cannot grow
# memory without bound, and a forgotten bucket was full anyway).
MAX_BUCKETS = 50_000


def bucket_key(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else ip)


@final
class FormThrottle:
    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, address: str) -> float:
        """Spend one token for ``address``: 0.0 when allowed, else seconds to wait."""
        key = bucket_key(address)
        now = self._clock()
        tokens, then = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - then) * self._rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self._rate
        while len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
        return wait
