"""One delivery attempt of one message to one route, answering an outcome per recipient.

MX delivery tries the hosts in preference order and moves on when a host cannot be
reached or refuses the session for now (RFC 5321 §5.1); the first host that takes the
transaction decides each recipient's outcome: its RCPT reply, then the reply to the data.
STARTTLS is used when offered (opportunistic, RFC 3207); a smarthost must offer it, and
gets AUTH when the domain's relay names a username.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import Literal

from smtp.client import ProtocolError, Reply, SmtpClient
from smtp.resolver import DnsPermanent, DnsTemporary, MxResolver
from smtp.routes import LocalRoute, MxRoute, Route, SmarthostRoute

log = logging.getLogger(__name__)

Result = Literal["delivered", "deferred", "failed"]


@dataclass(frozen=True)
class Outcome:
    result: Result
    reply: str
    host: str | None = None


class _TryNextHost(Exception):
    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass(frozen=True)
class DeliverySettings:
    hostname: str
    port: int
    connect_timeout: float
    command_timeout: float
    verify_mx_certificates: bool


def client_context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Deliverer:
    def __init__(self, settings: DeliverySettings, resolver: MxResolver) -> None:
        self._settings = settings
        self._resolver = resolver
        self._mx_tls = client_context(settings.verify_mx_certificates)
        self._verified = client_context(True)
        self._unverified = client_context(False)

    async def deliver(
        self, route: Route, sender: str, recipients: list[str], message: bytes
    ) -> dict[str, Outcome]:
        if isinstance(route, SmarthostRoute):
            return await self._via_smarthost(route, sender, recipients, message)
        if isinstance(route, LocalRoute):
            # Our own listener on loopback: TLS would protect nothing and costs a handshake.
            return await self._via_host(
                route.host, route.port, sender, recipients, message,
                tls=self._unverified, require_tls=False, login=None,
            )
        return await self._via_mx(route, sender, recipients, message)

    async def _via_mx(
        self, route: MxRoute, sender: str, recipients: list[str], message: bytes
    ) -> dict[str, Outcome]:
        try:
            hosts = await self._resolver.hosts(route.domain)
        except DnsPermanent as exc:
            return _all(recipients, "failed", f"550 5.1.2 {exc}")
        except DnsTemporary as exc:
            return _all(recipients, "deferred", f"451 4.4.3 {exc}")
        last = f"451 4.4.1 no MX host of {route.domain} could be reached"
        for host in hosts:
            for address in host.addresses:
                where = f"{host.name}[{address}]"
                try:
                    return await self._transaction(
                        address, self._settings.port, where, sender, recipients, message,
                        tls=self._mx_tls, require_tls=False, server_hostname=host.name,
                    )
                except _Permanent as exc:
                    return _all(recipients, "failed", exc.reply)
                except _TryNextHost as exc:
                    last = exc.reply
                except (ProtocolError, OSError) as exc:
                    last = f"451 4.4.1 {where}: {exc}"
                log.info("delivery via %s deferred (%s); trying the next host", where, last)
        return _all(recipients, "deferred", last)

    async def _via_smarthost(
        self, route: SmarthostRoute, sender: str, recipients: list[str], message: bytes
    ) -> dict[str, Outcome]:
        return await self._via_host(
            route.host, route.port, sender, recipients, message,
            tls=self._unverified if route.accept_self_signed else self._verified,
            require_tls=True,
            login=(route.username, route.password or "") if route.username else None,
        )

    async def _via_host(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: list[str],
        message: bytes,
        *,
        tls: ssl.SSLContext,
        require_tls: bool,
        login: tuple[str, str] | None,
    ) -> dict[str, Outcome]:
        """One named host (a smarthost, our own listener): no MX list to fall back on."""
        where = f"{host}:{port}"
        try:
            return await self._transaction(
                host, port, where, sender, recipients, message,
                tls=tls, require_tls=require_tls, server_hostname=host, login=login,
            )
        except _Permanent as exc:
            return _all(recipients, "failed", exc.reply)
        except _TryNextHost as exc:
            return _all(recipients, "deferred", exc.reply)
        except (ProtocolError, OSError) as exc:
            return _all(recipients, "deferred", f"451 4.4.1 {where}: {exc}")

    async def _transaction(
        self,
        host: str,
        port: int,
        where: str,
        sender: str,
        recipients: list[str],
        message: bytes,
        *,
        tls: ssl.SSLContext,
        require_tls: bool,
        server_hostname: str,
        login: tuple[str, str] | None = None,
    ) -> dict[str, Outcome]:
        s = self._settings
        client, greeting = await SmtpClient.connect(
            host, port, connect_timeout=s.connect_timeout, reply_timeout=s.command_timeout
        )
        try:
            _session_step(greeting, where, recipients, expect=220)
            _session_step(await client.ehlo(s.hostname), where, recipients)
            if "STARTTLS" in client.extensions:
                reply = await client.starttls(tls, server_hostname)
                if reply.code == 220:
                    _session_step(await client.ehlo(s.hostname), where, recipients)
                elif require_tls:
                    raise _TryNextHost(f"454 4.7.0 {where} refused STARTTLS: {reply}")
            elif require_tls:
                raise _TryNextHost(f"454 4.7.0 {where} does not offer STARTTLS")
            if login is not None:
                reply = await client.auth(*login)
                if not reply.ok:
                    # A refused relay login is the operator's to fix; keep the mail meanwhile
                    # (Postfix's smtp_sasl_auth_soft_bounce).
                    raise _TryNextHost(f"451 4.7.0 {where} refused our login: {reply}")
            _session_step(await client.mail(sender, len(message)), where, recipients)
            outcomes: dict[str, Outcome] = {}
            accepted: list[str] = []
            for rcpt in recipients:
                reply = await client.rcpt(rcpt)
                if reply.ok:
                    accepted.append(rcpt)
                else:
                    outcomes[rcpt] = _refused(reply, where)
            if accepted:
                reply = await client.data(message)
                for rcpt in accepted:
                    outcomes[rcpt] = (
                        Outcome("delivered", str(reply), where) if reply.ok
                        else _refused(reply, where)
                    )
            await client.quit()
            return outcomes
        finally:
            client.abort()


def _session_step(reply: Reply, where: str, recipients: list[str], expect: int = 0) -> None:
    """A reply before any recipient: 5xx fails everyone, anything else not 2xx tries on."""
    if (expect and reply.code == expect) or (not expect and reply.ok):
        return
    if reply.permanent:
        raise _Permanent(f"{reply} (from {where})")
    raise _TryNextHost(f"{reply} (from {where})")


class _Permanent(Exception):
    """A 5xx before any recipient (greeting, EHLO, MAIL): fails every recipient."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


def _refused(reply: Reply, where: str) -> Outcome:
    result: Result = "failed" if reply.permanent else "deferred"
    return Outcome(result, f"{reply} (from {where})", where)


def _all(recipients: list[str], result: Result, reply: str) -> dict[str, Outcome]:
    return {r: Outcome(result, reply) for r in recipients}
