"""Delivery from the spool to a real receiving SMTP server on loopback (an aiosmtpd sink).

MX records come from a DNS server on loopback; the delivery port is the sink's. Retries run
on a sub-second schedule (retry_initial 0.2 s) so the tests wait on outcomes, not clocks.
"""

from __future__ import annotations

import asyncio
import email
import smtplib
from pathlib import Path

import dkim as dkimpy
import pytest

from smtp import dkim
from tests.smtp_sink import Sink, SinkBehaviour
from tests.smtp_world import APP_ADDRESS, DOMAIN, REMOTE, MailWorld, mail_world

RCPT = f"someone@{REMOTE}"


async def send(world: MailWorld, rcpts: list[str], subject: str = "hi") -> str:
    data = (f"From: WordPress <{APP_ADDRESS}>\r\nTo: {', '.join(rcpts)}\r\n"
            f"Subject: {subject}\r\n\r\nHello from the relay.\r\n.leading dot\r\n")

    def run() -> str:
        with world.smtp("app") as client:
            client.login(APP_ADDRESS, world.app_password)
            client.mail(APP_ADDRESS)
            for rcpt in rcpts:
                client.rcpt(rcpt)
            code, text = client.data(data.encode())
            assert code == 250, text
            return text.decode().rsplit(" ", 1)[1]

    return await asyncio.to_thread(run)


async def wait_until(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_delivered_to_the_mx_with_a_dkim_signature_that_verifies(tmp_path: Path) -> None:
    async with mail_world(tmp_path) as world:
        domain = await world.store.mail.domain(DOMAIN)
        assert domain.dkim_private_key
        record = dkim.dns_record(DOMAIN, domain.dkim_selector, domain.dkim_private_key)
        world.dns.txt(record.name, record.value)
        await send(world, [RCPT])
        (received,) = await world.sink.wait_for(1)
        assert received.data.startswith(b"DKIM-Signature:")
        assert b"\r\n.leading dot\r\n" in received.data  # dot-stuffing undone by the sink

        def txt(name: bytes, timeout: int = 5) -> bytes | None:
            value = world.dns.lookup_txt(name.decode())
            return value.encode() if value else None

        assert dkimpy.verify(received.data, dnsfunc=txt)
        # A changed body no longer verifies: the signature covers it.
        assert not dkimpy.verify(received.data.replace(b"Hello", b"Hallo"), dnsfunc=txt)
        parsed = email.message_from_bytes(received.data)
        assert parsed["Received"]
        assert "ESMTPA" in parsed["Received"]
        assert parsed["Message-ID"]
        assert parsed["Date"]
        await wait_until(lambda: len(world.queue) == 0)
        assert list((world.spool_dir / "queue").iterdir()) == []
        await world.audit.flush()
        delivered = await world.store.audit.recent(action="mail.deliver")
        assert delivered
        assert RCPT in (delivered[-1].reason or "")
        metrics = world.metrics.render().decode()
        assert 'gateway_mail_deliveries_total{result="delivered"} 1.0' in metrics
        assert 'gateway_mail_submissions_total{port="app",result="accepted"} 1.0' in metrics


async def test_a_receiver_answering_4xx_then_2xx_gets_the_message_once(tmp_path: Path) -> None:
    slow, fine = f"slow@{REMOTE}", f"fine@{REMOTE}"
    behaviour = SinkBehaviour(defer_times={slow: 2})
    async with mail_world(tmp_path, behaviour) as world:
        await send(world, [slow, fine])
        await world.sink.wait_for(2)
        await wait_until(lambda: len(world.queue) == 0)
        # Let the queue run a few more rounds: nothing more may arrive.
        await asyncio.sleep(0.6)
        per_rcpt = [r for m in world.sink.received for r in m.recipients]
        assert sorted(per_rcpt) == [fine, slow]
        assert world.sink.handler.rcpt_attempts[slow] == 3
        assert world.sink.handler.rcpt_attempts[fine] == 1
        await world.audit.flush()
        assert len(await world.store.audit.recent(action="mail.defer")) == 2


async def test_a_receiver_answering_5xx_produces_a_bounce_to_the_sender(tmp_path: Path) -> None:
    gone, fine = f"gone@{REMOTE}", f"fine@{REMOTE}"
    async with mail_world(tmp_path, SinkBehaviour(reject={gone})) as world:
        queue_id = await send(world, [gone, fine], subject="Quarterly report")
        received = await world.sink.wait_for(2)
        bounce = next(m for m in received if m.sender == "")
        assert bounce.recipients == [APP_ADDRESS]
        report = email.message_from_bytes(bounce.data)
        assert report.get_content_type() == "multipart/report"
        assert report["Auto-Submitted"] == "auto-replied"
        status = next(p for p in report.walk()
                      if p.get_content_type() == "message/delivery-status")
        text = status.as_string()
        assert f"Final-Recipient: rfc822; {gone}" in text
        assert "Status: 5.1.1" in text
        assert fine not in text
        assert f"X-Gateway-Queue-ID: {queue_id}" in text
        assert "Subject: Quarterly report" in bounce.data.decode()
        assert world.sink.handler.rcpt_attempts[gone] == 1
        await wait_until(lambda: len(world.queue) == 0)
        await world.audit.flush()
        assert await world.store.audit.recent(action="mail.bounce")


async def test_a_receiver_deferring_past_the_lifetime_produces_a_bounce(tmp_path: Path) -> None:
    stuck = f"stuck@{REMOTE}"
    behaviour = SinkBehaviour(defer_times={stuck: 10_000})
    async with mail_world(tmp_path, behaviour, lifetime=1.5) as world:
        await send(world, [stuck])
        (bounce,) = await world.sink.wait_for(1)
        assert bounce.sender == ""
        assert b"queue lifetime" in bounce.data
        assert world.sink.handler.rcpt_attempts[stuck] >= 2


async def test_unknown_domain_fails_at_once_and_bounces(tmp_path: Path) -> None:
    async with mail_world(tmp_path) as world:
        await send(world, ["nobody@nowhere.invalid"])
        (bounce,) = await world.sink.wait_for(1)
        assert bounce.recipients == [APP_ADDRESS]
        assert b"does not exist" in bounce.data


async def test_smarthost_relay_uses_starttls_and_auth(tmp_path: Path) -> None:
    from smtp.tls import ensure_self_signed, server_context

    cert, key = ensure_self_signed(tmp_path / "smarthost-tls", "smarthost.test")
    smarthost = Sink(tls=server_context(cert, key), login=("relay-user", "relay-secret"))
    port = await smarthost.start()
    try:
        async with mail_world(tmp_path) as world:
            await world.store.mail.update_domain(DOMAIN, relay={
                "provider": "external-smtp", "host": "127.0.0.1", "port": port,
                "username": "relay-user", "password": "relay-secret",
                "acceptSelfSignedCerts": True,
            })
            await send(world, [RCPT, f"other@{REMOTE}"])
            (received,) = await smarthost.wait_for(1)
            assert sorted(received.recipients) == [f"other@{REMOTE}", RCPT]
            assert smarthost.logins == ["relay-user"]
            assert world.sink.received == []  # nothing went direct
    finally:
        await smarthost.close()


async def test_noop_relay_refuses_at_mail_from(tmp_path: Path) -> None:
    async with mail_world(tmp_path) as world:
        await world.store.mail.update_domain(DOMAIN, relay={"provider": "noop"})

        def run() -> None:
            with world.smtp("app") as client:
                client.login(APP_ADDRESS, world.app_password)
                client.sendmail(APP_ADDRESS, [RCPT], f"From: {APP_ADDRESS}\r\n\r\nx\r\n")

        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            await asyncio.to_thread(run)
        assert b"outbound mail is disabled" in refused.value.smtp_error


async def test_restart_resumes_the_queue_and_skips_delivered_recipients(tmp_path: Path) -> None:
    done, later = f"done@{REMOTE}", f"later@{REMOTE}"
    behaviour = SinkBehaviour(defer_times={later: 10_000})
    async with mail_world(tmp_path, behaviour, retry_initial=30.0) as world:
        await send(world, [done, later])
        await world.sink.wait_for(1)
        await wait_until(lambda: world.sink.handler.rcpt_attempts[later] == 1)
        await wait_until(lambda: any(
            r.status == "pending" and r.attempts == 1
            for m in world.queue._messages.values() for r in m.recipients.values()))
    # Same spool, a fresh relay: the deferred recipient is retried (the CLI's "retry"
    # brings the attempt forward), the delivered one is never contacted again.
    from smtp.spool import Spool

    spool = Spool(tmp_path / "data" / "mail" / "spool")
    (message_id,) = spool.ids()
    assert await spool.record(message_id, [{"event": "retry", "at": 0.0}])
    spool.close()
    async with mail_world(tmp_path, SinkBehaviour(), seed_store=False) as world:
        (received,) = await world.sink.wait_for(1)
        assert received.recipients == [later]
        await wait_until(lambda: len(world.queue) == 0)
        assert world.sink.handler.rcpt_attempts[done] == 0
