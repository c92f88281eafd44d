"""A real ``gateway serve`` killed with SIGKILL right after answering 250 still delivers the
message once it is started again: the spool had it on disk before the reply.
"""

from __future__ import annotations

import asyncio
import smtplib
from pathlib import Path

from gateway.store import open_store
from tests.gateway_process import GatewayProcess
from tests.services import free_port
from tests.smtp_dns import DnsServer
from tests.smtp_sink import Sink
from tests.smtp_world import APP_ADDRESS, DOMAIN, REMOTE, seed

RCPT = f"someone@{REMOTE}"


def gateway_env(smtp_port: int, dns_port: int, delivery_port: int) -> dict[str, str]:
    return {
        "GATEWAY_DEMO_ENABLED": "false",
        "GATEWAY_AUTH_ARGON2_MEMORY_KIB": "1024",
        "GATEWAY_AUTH_ARGON2_TIME_COST": "1",
        "GATEWAY_MAIL_ENABLED": "true",
        "GATEWAY_MAIL_HOSTNAME": "mail.example.com",
        "GATEWAY_MAIL_SUBMISSION_APP_LISTEN": f"127.0.0.1:{smtp_port}",
        "GATEWAY_MAIL_SUBMISSION_TLS_LISTEN": "",
        "GATEWAY_MAIL_SUBMISSION_STARTTLS_LISTEN": "",
        "GATEWAY_MAIL_QUEUE_RETRY_INITIAL": "0.2",
        "GATEWAY_MAIL_QUEUE_RETRY_MAX": "0.5",
        "GATEWAY_MAIL_DELIVERY_PORT": str(delivery_port),
        "GATEWAY_MAIL_DELIVERY_DNS_NAMESERVER": "127.0.0.1",
        "GATEWAY_MAIL_DELIVERY_DNS_PORT": str(dns_port),
        "GATEWAY_MAIL_DELIVERY_CONNECT_TIMEOUT": "2",
        "GATEWAY_RUNTIME_SHUTDOWN_GRACE": "2",
    }


async def test_sigkill_after_250_then_restart_still_delivers_once(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'data' / 'gateway.db'}")
    try:
        _, password, _ = await seed(store)
    finally:
        await store.close()
    dns = DnsServer()
    dns_port = await dns.start()
    dns.mx(REMOTE, f"mx.{REMOTE}")
    dns.a(f"mx.{REMOTE}")
    sink = Sink()
    sink_port = await sink.start()
    smtp_port = free_port()
    # First run: the MX is unreachable, so the message can only wait in the spool.
    first = GatewayProcess(tmp_path, env=gateway_env(smtp_port, dns_port, free_port()))
    second: GatewayProcess | None = None
    try:
        await asyncio.to_thread(first.wait_healthy)

        def submit() -> str:
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=20) as client:
                client.login(APP_ADDRESS, password)
                client.mail(APP_ADDRESS)
                client.rcpt(RCPT)
                data = f"From: {APP_ADDRESS}\r\nTo: {RCPT}\r\nSubject: survive\r\n\r\nkept\r\n"
                code, text = client.data(data.encode())
                # SIGKILL the moment the 250 is in: no shutdown, no flush, nothing.
                first.process.kill()
                assert code == 250, text
                return text.decode()

        reply = await asyncio.to_thread(submit)
        assert "queued as" in reply
        await asyncio.to_thread(first.process.wait, 10)
        assert sink.received == []

        second = GatewayProcess(tmp_path, env=gateway_env(smtp_port, dns_port, sink_port))
        await asyncio.to_thread(second.wait_healthy)
        (received,) = await sink.wait_for(1, timeout=30)
        assert received.recipients == [RCPT]
        assert b"Subject: survive" in received.data
        assert received.data.startswith(b"DKIM-Signature:")  # signed before it was spooled
        queue_dir = tmp_path / "data" / "mail" / "spool" / "queue"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while any(queue_dir.iterdir()):
            assert loop.time() < deadline, list(queue_dir.iterdir())
            await asyncio.sleep(0.05)
        assert len(sink.received) == 1
        assert "resuming 1 queued message(s)" in second.stdout
        assert DOMAIN in received.data.decode()
    finally:
        first.kill()
        if second is not None:
            second.kill()
        await sink.close()
        dns.close()
