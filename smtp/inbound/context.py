"""What inbound SMTP, IMAP and POP3 share in one process, built once from the context.

One ``MailboxStore`` per process (so a delivery wakes the IMAP sessions that have the
mailbox open), one ``ReaderLogin``, one TLS setup for IMAPS and POP3S. They are kept in
``ctx.extras`` under the names below, whichever server is built first makes them.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.internet import ssl

from gateway.config.mail_inbound import InboundMailConfig
from gateway.runtime.server import ServerContext
from smtp.maildir.access import ReaderLogin
from smtp.maildir.store import MailboxStore
from smtp.tls import ensure_self_signed

CONFIG_EXTRA = "mail_inbound_config"
MAILBOXES_EXTRA = "mailbox_store"
LOGIN_EXTRA = "mail_reader_login"
TLS_EXTRA = "mail_reader_tls"


def inbound_config(ctx: ServerContext) -> InboundMailConfig:
    """``[mail.inbound]``, unless a test hands its own through the context."""
    given = ctx.extras.get(CONFIG_EXTRA)
    if isinstance(given, InboundMailConfig):
        return given
    return ctx.config.mail.inbound


def maildir_root(ctx: ServerContext, config: InboundMailConfig) -> Path:
    root = config.maildir_root
    return root if root.is_absolute() else ctx.config.runtime.data_dir / root


def shared_mailboxes(ctx: ServerContext) -> MailboxStore:
    found = ctx.extras.get(MAILBOXES_EXTRA)
    if not isinstance(found, MailboxStore):
        config = inbound_config(ctx)
        found = MailboxStore(maildir_root(ctx, config), hostname=ctx.config.mail.hostname)
        ctx.extras[MAILBOXES_EXTRA] = found
    return found


def shared_login(ctx: ServerContext) -> ReaderLogin:
    found = ctx.extras.get(LOGIN_EXTRA)
    if not isinstance(found, ReaderLogin):
        found = ReaderLogin(ctx.portal, ctx.store)
        ctx.extras[LOGIN_EXTRA] = found
    return found


def reader_tls(ctx: ServerContext) -> ssl.CertificateOptions:
    """IMAPS/POP3S: [mail.inbound] tls_cert, else the relay's, else a self-signed one."""
    found = ctx.extras.get(TLS_EXTRA)
    if isinstance(found, ssl.CertificateOptions):
        return found
    config = inbound_config(ctx)
    cert, key = config.tls_cert, config.tls_key
    if cert is None or key is None:
        cert, key = ctx.config.mail.submission.tls_cert, ctx.config.mail.submission.tls_key
    if cert is None or key is None:
        cert, key = ensure_self_signed(
            maildir_root(ctx, config).parent / "tls", ctx.config.mail.hostname
        )
    chain = x509.load_pem_x509_certificates(cert.read_bytes())
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    options = ssl.CertificateOptions(
        privateKey=private, certificate=chain[0], extraCertChain=chain[1:] or None,
    )
    ctx.extras[TLS_EXTRA] = options
    return options
