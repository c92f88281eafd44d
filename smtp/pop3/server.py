"""The POP3 servers: plain (for apps, CLOUDRON_MAIL_POP3_PORT) and POP3S."""

from __future__ import annotations

from typing import Any

from twisted.internet import protocol

from gateway.runtime.server import Server, ServerContext
from smtp.inbound.context import inbound_config, reader_tls, shared_login, shared_mailboxes
from smtp.inbound.twisted_server import OpenConnections, TwistedServer
from smtp.maildir.access import Grant, ReaderLogin
from smtp.maildir.store import MailboxStore
from smtp.pop3.mailbox import Maildrop
from smtp.pop3.protocol import GatewayPop3Server

FAREWELL = b"-ERR [SYS/TEMP] Server shutting down, try again later\r\n"


class Pop3Factory(protocol.ServerFactory):
    noisy = False

    def __init__(
        self, login: ReaderLogin, mailboxes: MailboxStore, connections: OpenConnections
    ) -> None:
        self._login = login
        self._mailboxes = mailboxes
        self.connections = connections

    def buildProtocol(self, addr: Any) -> GatewayPop3Server:
        proto = GatewayPop3Server(
            login=self._login.login, maildrop_for=self._maildrop,
            source=getattr(addr, "host", None), on_close=self.connections.discard,
        )
        proto.factory = self
        self.connections.add(proto)
        return proto

    def _maildrop(self, grant: Grant) -> Maildrop:
        return Maildrop(self._mailboxes.folder(grant.inbox))


def build_pop3(ctx: ServerContext) -> list[Server]:
    config = inbound_config(ctx)
    connections = OpenConnections()
    factory = Pop3Factory(shared_login(ctx), shared_mailboxes(ctx), connections)
    servers: list[Server] = []
    if config.pop3_listen is not None:
        servers.append(TwistedServer("mail-pop3", config.pop3_listen, factory, connections,
                                     farewell=FAREWELL))
    if config.pop3s_listen is not None:
        servers.append(TwistedServer("mail-pop3s", config.pop3s_listen, factory, connections,
                                     farewell=FAREWELL, tls=lambda: reader_tls(ctx)))
    return servers
