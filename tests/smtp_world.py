"""The mail relay started in-process on port 0, with a store, a DNS server and a sink.

``mail_world(tmp_path)`` seeds a hosted domain ``example.com`` (with a DKIM key), an app
with the sendmail addon (``wordpress.app@example.com``), users alice (mailbox + alias
``sales@``) and bob, a remote domain ``remote.test`` whose MX is the sink, and yields a
``MailWorld`` with everything the tests need. Each server is stopped at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import smtplib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.audit import AuditLog
from gateway.auth import build_portal, hasher_for
from gateway.config import AuthConfig, Config, ListenAddress
from gateway.config.mail import DeliveryConfig, MailConfig, QueueConfig, SubmissionConfig
from gateway.config.mail_inbound import InboundMailConfig
from gateway.metrics import Metrics
from gateway.runtime.server import Server, ServerContext
from gateway.store import Store, open_store
from ratelimit import AttemptPolicy, NoLimits
from smtp import dkim
from smtp.server import MailQueueServer, build
from tests.smtp_dns import DnsServer
from tests.smtp_sink import Sink, SinkBehaviour

AUTH = AuthConfig(argon2_memory_kib=1024, argon2_time_cost=1)
DOMAIN = "example.com"
REMOTE = "remote.test"
APP_ADDRESS = f"wordpress.app@{DOMAIN}"
ALICE_PASSWORD = "alice password 1"
BOB_PASSWORD = "bob password 22"
GRACE = 5.0


@dataclass
class MailWorld:
    store: Store
    config: Config
    sink: Sink
    dns: DnsServer
    metrics: Metrics
    audit: AuditLog
    servers: list[Server]
    ports: dict[str, int]
    app_id: str
    app_password: str
    alice_id: str
    spool_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def queue(self) -> Any:
        return next(s for s in self.servers if isinstance(s, MailQueueServer)).queue

    def app_env(self, port: str = "app") -> dict[str, str]:
        """The app's CLOUDRON_MAIL_* environment, as the container manager hands it out."""
        return {
            "CLOUDRON_MAIL_SMTP_SERVER": "127.0.0.1",
            "CLOUDRON_MAIL_SMTP_PORT": str(self.ports["app"]),
            "CLOUDRON_MAIL_SMTPS_PORT": str(self.ports["tls"]),
            "CLOUDRON_MAIL_SMTP_USERNAME": APP_ADDRESS,
            "CLOUDRON_MAIL_SMTP_PASSWORD": self.app_password,
            "CLOUDRON_MAIL_FROM": APP_ADDRESS,
            "CLOUDRON_MAIL_DOMAIN": DOMAIN,
        }

    def smtp(self, port: str = "app") -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.ports[port], timeout=20)

    def smtps(self) -> smtplib.SMTP_SSL:
        return smtplib.SMTP_SSL("127.0.0.1", self.ports["tls"], timeout=20,
                                context=insecure_client_context())


def insecure_client_context() -> ssl.SSLContext:
    """Apps must accept the relay's self-signed certificate (Cloudron's sendmail docs)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def mail_config(
    tmp_path: Path, dns_port: int, sink_port: int, **queue: Any
) -> Config:
    zero = ListenAddress("127.0.0.1", 0)
    mail = MailConfig(
        enabled=True,
        hostname="mail.example.com",
        submission=SubmissionConfig(app_listen=zero, tls_listen=zero, starttls_listen=zero),
        queue=QueueConfig(**{"retry_initial": 0.2, "retry_max": 1.0, **queue}),
        delivery=DeliveryConfig(
            port=sink_port, dns_nameserver="127.0.0.1", dns_port=dns_port, dns_timeout=2.0,
            connect_timeout=5.0, command_timeout=10.0,
        ),
        # Every mail server on a free port; no DNSBL (the test DNS server lists nobody).
        inbound=InboundMailConfig(
            smtp_listen=zero, imap_listen=zero, imaps_listen=zero, pop3_listen=zero,
            pop3s_listen=zero, dnsbl_zones=[],
        ),
    )
    config = Config(auth=AUTH, mail=mail)
    runtime = dataclasses.replace(config.runtime, data_dir=tmp_path / "data")
    return dataclasses.replace(config, runtime=runtime)


async def seed(store: Store) -> tuple[str, str, str]:
    """The domain, the app with its sendmail credentials, alice and bob. Answers
    (app id, app password, alice's id)."""
    hasher = hasher_for(AUTH)
    try:
        await store.mail.add_domain(DOMAIN)
        await store.mail.update_domain(DOMAIN, dkim_private_key=dkim.generate_key(1024))
        await store.mail.add_domain("masked.example")
        await store.mail.update_domain("masked.example", masquerade=True)
        app = await store.apps.add(location="wordpress", domain=DOMAIN, manifest={"title": "WP"})
        password = secrets.token_hex(24)
        await store.apps.set_credentials(
            app.id, "sendmail", {"username": APP_ADDRESS, "password": password}
        )
        alice = await store.users.add(
            username="alice", email="alice@elsewhere.test",
            password_hash=hasher.hash_now(ALICE_PASSWORD),
        )
        await store.mail.add_mailbox("alice", DOMAIN, owner_id=alice.id)
        await store.mail.add_mailbox("sales", DOMAIN, kind="alias",
                                     alias_target=f"alice@{DOMAIN}")
        bob = await store.users.add(
            username="bob", email="bob@elsewhere.test", password_hash=hasher.hash_now(BOB_PASSWORD)
        )
        await store.mail.add_mailbox("bob", DOMAIN, owner_id=bob.id)
    finally:
        hasher.close()
    return app.id, password, alice.id


@contextlib.asynccontextmanager
async def mail_world(
    tmp_path: Path,
    behaviour: SinkBehaviour | None = None,
    *,
    seed_store: bool = True,
    extras: dict[str, Any] | None = None,
    policy: AttemptPolicy | None = None,
    **queue: Any,
) -> AsyncIterator[MailWorld]:
    dns = DnsServer()
    dns_port = await dns.start()
    dns.mx(REMOTE, f"mx.{REMOTE}")
    dns.a(f"mx.{REMOTE}")
    dns.mx(DOMAIN, f"mx.{DOMAIN}")
    dns.a(f"mx.{DOMAIN}")
    sink = Sink(behaviour)
    sink_port = await sink.start()
    config = mail_config(tmp_path, dns_port, sink_port, **queue)
    config.runtime.data_dir.mkdir(parents=True, exist_ok=True)
    store = await open_store(f"sqlite:///{tmp_path / 'store.db'}")
    servers: list[Server] = []
    started: list[Server] = []
    metrics = Metrics()
    audit = AuditLog(store.audit)
    policy = policy or NoLimits()
    portal = await build_portal(AUTH, store, audit=audit, metrics=metrics, policy=policy)
    try:
        app_id, app_password, alice_id = await seed(store) if seed_store else ("", "", "")
        ctx = ServerContext(config=config, store=store, portal=portal, policy=policy,
                            audit=audit, metrics=metrics, extras=dict(extras or {}))
        servers = list(build(ctx))
        ports: dict[str, int] = {}
        for server in servers:
            addresses = await server.start()
            started.append(server)
            if addresses:
                ports[server.name.rsplit("-", 1)[1]] = addresses[0][1]
        yield MailWorld(
            store=store, config=config, sink=sink, dns=dns, metrics=metrics, audit=audit,
            servers=servers, ports=ports, app_id=app_id, app_password=app_password,
            alice_id=alice_id, spool_dir=config.runtime.data_dir / "mail" / "spool",
        )
    finally:
        for server in reversed(started):
            await server.stop(GRACE)
        await audit.close()
        portal.verifier.hasher.close()
        await store.close()
        await sink.close()
        dns.close()
