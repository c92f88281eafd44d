"""Hands each connection what it needs, and keeps count of the connections.

Two caps: ``max_connections`` for the whole server (a connection over it is closed at once,
before any byte is read), and a per-app cap through a ``ConnectionLimiter`` keyed by the
app the connection's address names (else its source address): a connection over that cap
is answered busy (51) on its first request and closed. The rate-limit package provides a
shared limiter; ``PerKeyCap`` is the in-process default.
"""

from __future__ import annotations

import logging
import ssl
import time
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.config.ldap import LdapConfig
from ldap.caller import CallerResolver
from ldap.operations import Operations
from ldap.wire import Op

if TYPE_CHECKING:
    from ldap.protocol import LdapProtocol

log = logging.getLogger(__name__)


class ConnectionLimiter(Protocol):
    def acquire(self, key: str) -> bool: ...

    def release(self, key: str) -> None: ...


class PerKeyCap:
    """At most ``limit`` open connections per key; 0 means no cap."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: dict[str, int] = {}

    def acquire(self, key: str) -> bool:
        count = self._open.get(key, 0)
        if self._limit and count >= self._limit:
            return False
        self._open[key] = count + 1
        return True

    def release(self, key: str) -> None:
        count = self._open.get(key, 0) - 1
        if count > 0:
            self._open[key] = count
        else:
            self._open.pop(key, None)


class LdapMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.operations = _collector(
            registry, "gateway_ldap_operations",
            lambda: Counter("gateway_ldap_operations", "LDAP requests by operation.", ["op"],
                            registry=registry),
        )
        self.connections = _collector(
            registry, "gateway_ldap_connections",
            lambda: Gauge("gateway_ldap_connections", "Open LDAP connections.",
                          registry=registry),
        )
        self.refused = _collector(
            registry, "gateway_ldap_refused_connections",
            lambda: Counter("gateway_ldap_refused_connections",
                            "LDAP connections refused by a connection cap.", ["cap"],
                            registry=registry),
        )


def _collector(registry: CollectorRegistry, name: str, make: Any) -> Any:
    # Two LDAP servers may share one registry (tests): the second reuses the collectors.
    existing = getattr(registry, "_names_to_collectors", {}).get(name)
    return existing if existing is not None else make()


class ConnectionBook:
    """The open connections of one server, across its listeners."""

    def __init__(self) -> None:
        self.open: set[LdapProtocol] = set()


class LdapFactory:
    """The protocol factory of one kind of listener (plain or LDAPS) for ``create_server``."""

    def __init__(
        self,
        config: LdapConfig,
        operations: Operations,
        resolver: CallerResolver,
        limiter: ConnectionLimiter,
        metrics: LdapMetrics,
        book: ConnectionBook,
        *,
        tls: bool = False,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self.operations = operations
        self.resolver = resolver
        self.limiter = limiter
        self.metrics = metrics
        self.book = book
        self.tls = tls
        self.tls_context = tls_context
        self._op_names = {op.value: op.name.lower() for op in Op}
        self._op_counters: dict[int, Any] = {}
        self.clock = time.monotonic

    def __call__(self) -> LdapProtocol:
        from ldap.protocol import LdapProtocol

        return LdapProtocol(self, tls=self.tls)

    def admit(self, proto: LdapProtocol) -> bool:
        """Whether the server-wide cap leaves room for one more connection."""
        if len(self.book.open) < self.config.max_connections:
            return True
        self.metrics.refused.labels("server").inc()
        peer = proto.transport.get_extra_info("peername") if proto.transport else None
        log.warning("refusing LDAP connection from %s: %d open", peer, len(self.book.open))
        return False

    def connection_opened(self, proto: LdapProtocol) -> str | None:
        """Register ``proto``; answer its limiter key, or None when over the per-app cap."""
        self.book.open.add(proto)
        self.metrics.connections.inc()
        session = proto.session
        assert session is not None
        app_id = self.resolver.address_app(session.peer, session.local)
        key = f"app:{app_id}" if app_id else f"source:{session.peer}"
        if not self.limiter.acquire(key):
            self.metrics.refused.labels("app").inc()
            log.warning("LDAP connection cap reached for %s", key)
            return None
        return key

    def connection_closed(self, proto: LdapProtocol, key: str | None) -> None:
        if proto in self.book.open:
            self.book.open.discard(proto)
            self.metrics.connections.dec()
        if key is not None:
            self.limiter.release(key)

    def count(self, op: int) -> None:
        counter = self._op_counters.get(op)
        if counter is None:
            counter = self.metrics.operations.labels(self._op_names.get(op, str(op)))
            self._op_counters[op] = counter
        counter.inc()

    def sweep_idle(self) -> None:
        """Close connections idle for longer than ``idle_timeout`` (see LdapServer)."""
        limit = self.config.idle_timeout
        if not limit:
            return
        now = self.clock()
        for proto in list(self.book.open):
            if now - proto.last_active > limit:
                proto.abort()
