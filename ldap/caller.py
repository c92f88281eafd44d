"""Which app is asking (SPEC.md), and what a connection has proved so far.

In this order: the connection's source address is an app container's address; the local
address the client connected to is an app's own LDAP endpoint (``127.0.0.N`` for apps on
the host network or run as local processes); or the app bound as ``cn=<app id>,ou=apps``
on this connection. Once an app is known, user binds and searches on the connection are
judged for it. The directory-server admin (an optional mode) sees every listed user.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.auth import UserIdentity
from gateway.store.models import App
from ldap.index import DirectoryIndex
from ldap.paging import PagedSearches

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


def address_in(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


@dataclass
class Session:
    """What one connection is and has proved; lives as long as the connection."""

    peer: str
    local: str
    tls: bool
    paged: PagedSearches
    bound_app: str | None = None
    bound_user: UserIdentity | None = None
    bound_dn: str = ""
    # Proved the directory-server secret on this connection; like an app bind, it stays
    # for later user binds and searches.
    directory_client: bool = False

    def reset_login(self) -> None:
        """After a bind attempt the connection is anonymous again (RFC 4511 4.2.1); the
        app it acts for stays known (bound apps as well as addressed ones)."""
        self.bound_user = None
        self.bound_dn = ""


@dataclass(frozen=True)
class Caller:
    app: App | None
    directory_admin: bool
    mail_reader: bool

    @property
    def reads_people(self) -> bool:
        return self.app is not None or self.directory_admin

    @property
    def cache_key(self) -> str:
        return f"app:{self.app.id}" if self.app is not None else "directory"


class CallerResolver:
    def __init__(self, index: DirectoryIndex, mail_readers: tuple[Network, ...]) -> None:
        self._index = index
        self._mail_readers = mail_readers

    def address_app(self, peer: str, local: str) -> str | None:
        index = self._index
        return index.app_by_source.get(_plain(peer)) or index.app_by_server.get(_plain(local))

    def app_id(self, session: Session) -> str | None:
        return self.address_app(session.peer, session.local) or session.bound_app

    def resolve(self, session: Session) -> Caller:
        app_id = self.app_id(session)
        app = self._index.apps.get(app_id) if app_id else None
        reader = session.directory_client or address_in(session.peer, self._mail_readers)
        if app is not None and "email" in self._index.app_addons(app):
            reader = True
        return Caller(app=app, directory_admin=session.directory_client, mail_reader=reader)


def _plain(address: str) -> str:
    """IPv4 peers on a dual-stack socket arrive as ::ffff:a.b.c.d."""
    return address[7:] if address.startswith("::ffff:") and "." in address else address
