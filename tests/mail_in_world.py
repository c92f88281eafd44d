"""Inbound mail started in-process on port 0: MX, IMAP, IMAPS, POP3, POP3S, and a DNSBL.

``mail_in_world(tmp_path)`` seeds a receiving domain ``example.com`` with:

- an app ``wordpress`` with the recvmail addon (inbox ``wordpress.app@example.com``),
- alice (mailbox ``alice@``, alias ``sales@`` → alice, app password for ``mail``),
- bob (mailbox ``bob@``), a list ``team@`` = alice + bob + someone at ``remote.test``,
- ``tiny@`` (bob's, quota 3000 bytes), a catch-all domain ``catchall.test`` → bob,
- ``quiet.test``: a mail domain that does not receive mail,

and a DNS server on loopback whose zone ``bl.test`` lists 127.0.0.2 (RFC 5782 §5's test
address) and not 127.0.0.1. Everything is stopped at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import imaplib
import os
import secrets
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from gateway.audit import AuditLog
from gateway.auth import build_portal, hasher_for
from gateway.config import AuthConfig, Config, ListenAddress
from gateway.config.mail import MailConfig
from gateway.config.mail_inbound import InboundMailConfig
from gateway.containers.environment import app_environment
from gateway.metrics import Metrics
from gateway.runtime.server import Server, ServerContext
from gateway.store import Store, open_store
from ratelimit import AttemptPolicy, NoLimits
from smtp.imap.server import build_imap
from smtp.inbound.context import CONFIG_EXTRA
from smtp.inbound.server import build_inbound
from smtp.maildir.store import MailboxStore
from smtp.pop3.server import build_pop3
from tests.smtp_dns import DnsServer

AUTH = AuthConfig(argon2_memory_kib=1024, argon2_time_cost=1)
DOMAIN = "example.com"
APP_ADDRESS = f"wordpress.app@{DOMAIN}"
ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"
ALICE_PASSWORD = "alice password 1"
BOB_PASSWORD = "bob password 22"
BLOCKLIST = "bl.test"
LISTED_SOURCE = "127.0.0.2"
TINY_QUOTA = 3000
GRACE = 5.0
APP_MANIFEST = {
    "manifestVersion": 2, "httpPort": 8000, "healthCheckPath": "/", "title": "WP",
    "addons": {"recvmail": {}},
}


@dataclass
class MailInWorld:
    store: Store
    config: Config
    inbound: InboundMailConfig
    dns: DnsServer
    metrics: Metrics
    audit: AuditLog
    ctx: ServerContext
    servers: list[Server]
    ports: dict[str, int]
    app_id: str
    app_password: str
    alice_id: str
    alice_mail_app_password: str
    mailboxes: MailboxStore

    def maildir(self, address: str) -> Path:
        return self.mailboxes.path_for(address)

    def delivered(self, address: str) -> list[Path]:
        """The message files in the INBOX of ``address`` (new/ and cur/)."""
        box = self.maildir(address)
        return sorted(p for sub in ("new", "cur") if (box / sub).is_dir()
                      for p in (box / sub).iterdir())

    async def app_env(self) -> dict[str, str]:
        """The app's environment, as the container manager composes it, with our ports."""
        containers = dataclasses.replace(
            self.config.containers, mail_server="127.0.0.1", imap_port=self.ports["imap"],
            imaps_port=self.ports["imaps"], pop3_port=self.ports["pop3"],
            pop3s_port=self.ports["pop3s"],
        )
        config = dataclasses.replace(self.config, containers=containers)
        app = await self.store.apps.get(self.app_id)
        return await app_environment(self.store, config, app)

    def imap(self) -> imaplib.IMAP4:
        return imaplib.IMAP4("127.0.0.1", self.ports["imap"], timeout=20)

    def imaps(self) -> imaplib.IMAP4_SSL:
        return imaplib.IMAP4_SSL("127.0.0.1", self.ports["imaps"], timeout=20,
                                 ssl_context=insecure_client_context())


def insecure_client_context() -> ssl.SSLContext:
    """Apps must accept the mail server's self-signed certificate (the seed's Email addon)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def inbound_config(dns_port: int, **overrides: object) -> InboundMailConfig:
    zero = ListenAddress("127.0.0.1", 0)
    values: dict[str, object] = {
        "smtp_listen": zero, "imap_listen": zero, "imaps_listen": zero, "pop3_listen": zero,
        "pop3s_listen": zero, "dnsbl_zones": [BLOCKLIST], "dns_nameserver": "127.0.0.1",
        "dns_port": dns_port, "dns_timeout": 2.0, "idle_poll": 0.1,
        "max_message_size": 200_000,
    }
    values.update(overrides)
    return InboundMailConfig(**values)  # type: ignore[arg-type]


async def seed(store: Store) -> tuple[str, str, str, str]:
    """Answers (app id, app recvmail password, alice's id, alice's `mail` app password)."""
    hasher = hasher_for(AUTH)
    try:
        await store.mail.add_domain(DOMAIN, receives=True)
        await store.mail.add_domain("catchall.test", receives=True)
        await store.mail.update_domain("catchall.test", catch_all=[BOB])
        await store.mail.add_domain("quiet.test", receives=False)
        app = await store.apps.add(location="wordpress", domain=DOMAIN, manifest=APP_MANIFEST)
        password = secrets.token_hex(24)
        await store.apps.set_credentials(
            app.id, "recvmail", {"username": APP_ADDRESS, "password": password}
        )
        await store.mail.add_mailbox("wordpress.app", DOMAIN, owner_id=app.id, owner_type="app")
        alice = await store.users.add(
            username="alice", email="alice@elsewhere.test",
            password_hash=hasher.hash_now(ALICE_PASSWORD),
        )
        app_password = "alice-mail-" + secrets.token_hex(8)
        await store.app_passwords.add(
            alice.id, "phone", "mail", hasher.hash_now(app_password)
        )
        await store.mail.add_mailbox("alice", DOMAIN, owner_id=alice.id)
        await store.mail.add_mailbox("sales", DOMAIN, kind="alias", alias_target=ALICE)
        bob = await store.users.add(
            username="bob", email="bob@elsewhere.test", password_hash=hasher.hash_now(BOB_PASSWORD)
        )
        await store.mail.add_mailbox("bob", DOMAIN, owner_id=bob.id)
        await store.mail.add_mailbox("tiny", DOMAIN, owner_id=bob.id, quota_bytes=TINY_QUOTA)
        await store.mail.add_mailbox(
            "team", DOMAIN, kind="list", members=(ALICE, BOB, "carol@remote.test")
        )
    finally:
        hasher.close()
    return app.id, password, alice.id, app_password


@contextlib.asynccontextmanager
async def mail_in_world(
    tmp_path: Path, *, policy: AttemptPolicy | None = None, **overrides: object
) -> AsyncIterator[MailInWorld]:
    dns = DnsServer()
    dns_port = await dns.start()
    dns.a(f"2.0.0.127.{BLOCKLIST}", "127.0.0.2")
    dns.txt(f"2.0.0.127.{BLOCKLIST}", "listed for testing")
    inbound = inbound_config(int(overrides.pop("dns_port", dns_port)), **overrides)  # type: ignore[call-overload]
    config = Config(auth=AUTH, mail=MailConfig(enabled=True, hostname="mail.example.com"))
    runtime = dataclasses.replace(config.runtime, data_dir=tmp_path / "data")
    config = dataclasses.replace(config, runtime=runtime)
    config.runtime.data_dir.mkdir(parents=True, exist_ok=True)
    store = await open_store(f"sqlite:///{tmp_path / 'store.db'}")
    metrics = Metrics()
    audit = AuditLog(store.audit)
    policy = policy or NoLimits()
    portal = await build_portal(AUTH, store, audit=audit, metrics=metrics, policy=policy)
    started: list[Server] = []
    try:
        app_id, app_password, alice_id, mail_password = await seed(store)
        ctx = ServerContext(config=config, store=store, portal=portal, policy=policy,
                            audit=audit, metrics=metrics, extras={CONFIG_EXTRA: inbound})
        servers = [*build_inbound(ctx), *build_imap(ctx), *build_pop3(ctx)]
        ports: dict[str, int] = {}
        for server in servers:
            addresses = await server.start()
            started.append(server)
            ports[server.name.rsplit("-", 1)[1]] = addresses[0][1]
        yield MailInWorld(
            store=store, config=config, inbound=inbound, dns=dns, metrics=metrics, audit=audit,
            ctx=ctx, servers=servers, ports=ports, app_id=app_id, app_password=app_password,
            alice_id=alice_id, alice_mail_app_password=mail_password,
            mailboxes=ctx.extras["mailbox_store"],
        )
    finally:
        for server in reversed(started):
            await server.stop(GRACE)
        await audit.close()
        portal.verifier.hasher.close()
        await store.close()
        dns.close()


def swaks(port: int, to: str, *, sender: str = "someone@remote.test", body: str = "hello",
          subject: str = "test", local: str | None = None, extra: tuple[str, ...] = (),
          ) -> list[str]:
    """The swaks command line delivering one message to the MX on loopback."""
    command = [
        "swaks", "--server", "127.0.0.1", "--port", str(port), "--to", to, "--from", sender,
        "--helo", "mx.remote.test", "--header", f"Subject: {subject}", "--body", body,
        "--timeout", "20", "--silent", "1", *extra,
    ]
    if local is not None:
        command += ["--local-interface", local]
    return command


def clean_env() -> dict[str, str]:
    """The test process's env without proxies (curl and swaks must stay on loopback)."""
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
