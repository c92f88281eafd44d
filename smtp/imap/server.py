"""The IMAP servers: plain (for apps, CLOUDRON_MAIL_IMAP_PORT) and IMAPS, over one factory.

``build_imap(ctx)`` is what ``smtp/server.py``'s ``build`` calls beside ``build_inbound``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import protocol

from gateway.config.mail_inbound import InboundMailConfig
from gateway.runtime.server import Server, ServerContext
from smtp.imap.account import MaildirAccount
from smtp.imap.protocol import GatewayImapServer
from smtp.imap.view import OverQuota
from smtp.inbound.context import inbound_config, reader_tls, shared_login, shared_mailboxes
from smtp.inbound.twisted_server import OpenConnections, TwistedServer
from smtp.maildir.access import Grant, ReaderLogin
from smtp.maildir.store import MailboxStore

FAREWELL = b"* BYE [UNAVAILABLE] Server shutting down, try again later\r\n"


class ImapFactory(protocol.ServerFactory):
    def __init__(
        self, login: ReaderLogin, mailboxes: MailboxStore, config: InboundMailConfig,
        connections: OpenConnections,
    ) -> None:
        self._login = login
        self._mailboxes = mailboxes
        self._config = config
        self.connections = connections

    def buildProtocol(self, addr: Any) -> GatewayImapServer:
        proto = GatewayImapServer(
            login=self._login.login, account_for=self._account, source=getattr(addr, "host", None),
            max_size=self._config.max_message_size, idle_timeout=self._config.imap_idle_timeout,
            idle_poll=self._config.idle_poll, on_close=self.connections.discard,
        )
        proto.factory = self
        self.connections.add(proto)
        return proto

    def _account(self, grant: Grant) -> MaildirAccount:
        limit = grant.quota or self._config.default_quota

        def check_quota(size: int) -> None:
            if limit > 0 and self._mailboxes.usage(grant.inbox) + size > limit:
                raise OverQuota("quota exceeded")

        return MaildirAccount(grant, self._mailboxes, max_size=self._config.max_message_size,
                              on_append=check_quota)


def build_imap(ctx: ServerContext) -> list[Server]:
    config = inbound_config(ctx)
    connections = OpenConnections()
    factory = ImapFactory(shared_login(ctx), shared_mailboxes(ctx), config, connections)
    servers: list[Server] = []
    if config.imap_listen is not None:
        servers.append(TwistedServer("mail-imap", config.imap_listen, factory, connections,
                                     farewell=FAREWELL))
    if config.imaps_listen is not None:
        servers.append(TwistedServer("mail-imaps", config.imaps_listen, factory, connections,
                                     farewell=FAREWELL, tls=lambda: reader_tls(ctx)))
    return servers
