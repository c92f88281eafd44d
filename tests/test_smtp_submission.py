"""Submission over real sockets with real clients: swaks (the seed's commands) and smtplib.

The relay runs in this process (tests/smtp_world.py); clients run in a thread or a child
process, since the server shares the test's event loop.
"""

from __future__ import annotations

import asyncio
import base64
import os
import smtplib
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.smtp_world import (
    ALICE_PASSWORD,
    APP_ADDRESS,
    BOB_PASSWORD,
    DOMAIN,
    REMOTE,
    MailWorld,
    insecure_client_context,
    mail_world,
)

# Sendmail addon docs (seed 000, "Sendmail"), verbatim; the recipient comes from swaks's
# SWAKS_OPT_to environment variable, since the documented command names none.
SWAKS_PLAIN = (
    'swaks --server "${CLOUDRON_MAIL_SMTP_SERVER}" -p "${CLOUDRON_MAIL_SMTP_PORT}" '
    '--from "${CLOUDRON_MAIL_FROM}" --body "Test mail from cloudron app at $(hostname -f)" '
    '--auth-user "${CLOUDRON_MAIL_SMTP_USERNAME}" --auth-password "${CLOUDRON_MAIL_SMTP_PASSWORD}"'
)
SWAKS_TLS = (
    'swaks --server "${CLOUDRON_MAIL_SMTP_SERVER}" -p "${CLOUDRON_MAIL_SMTPS_PORT}" '
    '--from "${CLOUDRON_MAIL_FROM}" --body "Test mail from cloudron app at $(hostname -f)" '
    '--auth-user "${CLOUDRON_MAIL_SMTP_USERNAME}" --auth-password "${CLOUDRON_MAIL_SMTP_PASSWORD}" '
    "-tlsc"
)
RCPT = f"someone@{REMOTE}"
SWAKS_TIMEOUT = 60.0


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[MailWorld]:
    async with mail_world(tmp_path) as w:
        yield w


async def swaks(command: str, env: dict[str, str], *extra: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", command + "".join(f" {e}" for e in extra),
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), SWAKS_TIMEOUT)
    return process.returncode or 0, out.decode(errors="replace")


def message(sender: str, to: str = RCPT, subject: str = "hello", extra: str = "") -> str:
    return f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}\r\nbody\r\n"


async def send(
    world: MailWorld, login: str, password: str, sender: str, data: str,
    *, port: str = "app", rcpts: tuple[str, ...] = (RCPT,),
) -> dict[str, tuple[int, bytes]]:
    """Log in and send with smtplib in a thread; answers what sendmail() raised or refused."""

    def run() -> dict[str, tuple[int, bytes]]:
        client = world.smtps() if port == "tls" else world.smtp(port)
        with client:
            if port == "starttls":
                client.starttls(context=insecure_client_context())
            client.login(login, password)
            return client.sendmail(sender, list(rcpts), data.encode())

    return await asyncio.to_thread(run)


async def test_app_sends_with_the_seed_swaks_command_on_the_plain_port(world: MailWorld) -> None:
    code, out = await swaks(SWAKS_PLAIN, {**world.app_env(), "SWAKS_OPT_to": RCPT})
    assert code == 0, out
    assert "235 2.7.0 Authentication successful" in out
    assert "STARTTLS" not in out.split("EHLO", 1)[1].split("AUTH", 1)[0]
    received = await world.sink.wait_for(1)
    assert received[0].sender == APP_ADDRESS
    assert received[0].recipients == [RCPT]
    assert b"Test mail from cloudron app at" in received[0].data


async def test_app_sends_with_the_seed_swaks_command_over_implicit_tls(world: MailWorld) -> None:
    code, out = await swaks(SWAKS_TLS, {**world.app_env(), "SWAKS_OPT_to": RCPT})
    assert code == 0, out
    assert "TLS started" in out
    received = await world.sink.wait_for(1)
    assert received[0].sender == APP_ADDRESS


async def test_a_wrong_app_password_is_535_and_sends_nothing(world: MailWorld) -> None:
    env = {**world.app_env(), "SWAKS_OPT_to": RCPT, "CLOUDRON_MAIL_SMTP_PASSWORD": "0" * 48}
    code, out = await swaks(SWAKS_PLAIN, env)
    assert code != 0
    assert "535 5.7.8" in out
    events = await _audit(world, "app.login.failed")
    assert events
    assert events[-1].door == "smtp"
    assert world.sink.received == []


async def test_an_app_password_is_bound_to_its_own_address(world: MailWorld) -> None:
    # Cloudron 2019 accepted an app's password with any login (C.3 step 4); not here.
    with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        await send(world, f"bob@{DOMAIN}", world.app_password, APP_ADDRESS, message(APP_ADDRESS))
    assert refused.value.smtp_code == 535


async def test_app_spoofing_the_envelope_sender_is_refused_with_the_reason(
    world: MailWorld,
) -> None:
    env = {**world.app_env(), "SWAKS_OPT_to": RCPT, "CLOUDRON_MAIL_FROM": f"alice@{DOMAIN}"}
    code, out = await swaks(SWAKS_PLAIN, env)
    assert code != 0
    assert f"553 5.7.1 {APP_ADDRESS} may not send as <alice@{DOMAIN}>" in out
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        await send(world, APP_ADDRESS, world.app_password, "ceo@bank.test", message(APP_ADDRESS))
    assert refused.value.smtp_code == 553
    assert b"not hosted here" in refused.value.smtp_error
    assert world.sink.received == []
    assert any("envelope sender" in (e.reason or "") for e in await _audit(world, "mail.refused"))


async def test_app_spoofing_the_header_from_is_refused(world: MailWorld) -> None:
    for forged in (f"alice@{DOMAIN}", f'"{APP_ADDRESS}" <alice@{DOMAIN}>',
                   f'"alice@{DOMAIN}" <{APP_ADDRESS}>', f"{APP_ADDRESS}, alice@{DOMAIN}"):
        with pytest.raises(smtplib.SMTPDataError) as refused:
            await send(world, APP_ADDRESS, world.app_password, APP_ADDRESS, message(forged))
        assert refused.value.smtp_code == 550, forged
        assert b"5.7.1 header From" in refused.value.smtp_error
    with pytest.raises(smtplib.SMTPDataError) as sender_refused:
        await send(world, APP_ADDRESS, world.app_password, APP_ADDRESS,
                   message(APP_ADDRESS, extra=f"Sender: alice@{DOMAIN}\r\n"))
    assert b"header Sender" in sender_refused.value.smtp_error
    assert world.sink.received == []


async def test_app_may_use_tags_and_its_display_name(world: MailWorld) -> None:
    tagged = f"wordpress.app+news@{DOMAIN}"
    await send(world, APP_ADDRESS, world.app_password, tagged,
               message(f'"WordPress" <{tagged}>'))
    received = await world.sink.wait_for(1)
    assert received[0].sender == tagged


async def test_user_sends_as_own_mailbox_and_alias_but_not_as_another_user(
    world: MailWorld,
) -> None:
    alice = f"alice@{DOMAIN}"
    await send(world, alice, ALICE_PASSWORD, alice, message(alice), port="starttls")
    sales = f"sales@{DOMAIN}"
    await send(world, alice, ALICE_PASSWORD, sales, message(f"Sales <{sales}>"),
               port="starttls")
    # Logging in by username works as well as by mailbox address.
    await send(world, "alice", ALICE_PASSWORD, f"sales+q3@{DOMAIN}",
               message(f"sales+q3@{DOMAIN}"), port="tls")
    received = await world.sink.wait_for(3)
    assert sorted(r.sender for r in received) == sorted([alice, sales, f"sales+q3@{DOMAIN}"])
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        await send(world, alice, ALICE_PASSWORD, f"bob@{DOMAIN}", message(f"bob@{DOMAIN}"),
                   port="starttls")
    assert refused.value.smtp_code == 553
    with pytest.raises(smtplib.SMTPSenderRefused):
        await send(world, f"bob@{DOMAIN}", BOB_PASSWORD, sales, message(sales), port="tls")


async def test_masquerading_domain_accepts_any_of_its_addresses(world: MailWorld) -> None:
    await send(world, APP_ADDRESS, world.app_password, "anyone@masked.example",
               message("Anyone <anyone@masked.example>"))
    received = await world.sink.wait_for(1)
    assert received[0].sender == "anyone@masked.example"


async def test_people_port_requires_starttls_before_auth(world: MailWorld) -> None:
    def run() -> tuple[str, int, bytes, str]:
        with world.smtp("starttls") as client:
            client.ehlo("client.test")
            before = client.ehlo_resp.decode() if client.ehlo_resp else ""
            plain = base64.b64encode(f"\0alice@{DOMAIN}\0{ALICE_PASSWORD}".encode()).decode()
            code, text = client.docmd("AUTH", f"PLAIN {plain}")
            client.starttls(context=insecure_client_context())
            client.ehlo("client.test")
            after = client.ehlo_resp.decode() if client.ehlo_resp else ""
            return before, code, text, after

    before, code, text, after = await asyncio.to_thread(run)
    assert "STARTTLS" in before
    assert "AUTH" not in before
    assert code == 530, text
    assert "AUTH LOGIN PLAIN" in after


async def test_mail_without_auth_is_refused_on_every_port(world: MailWorld) -> None:
    def run() -> tuple[int, bytes]:
        with world.smtp("app") as client:
            client.ehlo("client.test")
            return client.docmd("MAIL", f"FROM:<{APP_ADDRESS}>")

    code, text = await asyncio.to_thread(run)
    assert code == 530
    assert b"5.7.0" in text


async def test_user_password_checks_go_through_the_portal_with_mail_app_passwords(
    world: MailWorld,
) -> None:
    with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        await send(world, f"alice@{DOMAIN}", "wrong", f"alice@{DOMAIN}", message("x"),
                   port="tls")
    assert refused.value.smtp_code == 535
    failures = await _audit(world, "user.login.failed")
    assert failures[-1].door == "smtp"
    assert ALICE_PASSWORD not in repr(failures)


async def test_recipient_and_size_limits(tmp_path: Path) -> None:
    async with mail_world(tmp_path) as world:
        limit = world.config.mail.submission.max_recipients
        rcpts = tuple(f"r{i}@{REMOTE}" for i in range(limit + 1))
        refused = await send(world, APP_ADDRESS, world.app_password, APP_ADDRESS,
                             message(APP_ADDRESS), rcpts=rcpts)
        assert set(refused) == {rcpts[-1]}
        assert refused[rcpts[-1]][0] == 452
        (received,) = await world.sink.wait_for(1)
        assert len(received.recipients) == limit

        big = message(APP_ADDRESS) + "x" * (world.config.mail.submission.max_message_size + 10)
        with pytest.raises(smtplib.SMTPException) as too_big:
            await send(world, APP_ADDRESS, world.app_password, APP_ADDRESS, big)
        assert "552" in str(too_big.value)


async def test_header_bomb_and_bad_header_get_clear_errors(world: MailWorld) -> None:
    bomb = "".join(f"X-H{i}: v\r\n" for i in range(2000))
    with pytest.raises(smtplib.SMTPDataError) as refused:
        await send(world, APP_ADDRESS, world.app_password, APP_ADDRESS,
                   message(APP_ADDRESS, extra=bomb))
    assert refused.value.smtp_code == 552
    assert b"5.3.4" in refused.value.smtp_error
    with pytest.raises(smtplib.SMTPDataError) as malformed:
        await send(world, APP_ADDRESS, world.app_password, APP_ADDRESS,
                   f"From: {APP_ADDRESS}\r\nthis is not a header\r\n\r\nbody\r\n")
    assert malformed.value.smtp_code == 550
    # The session is still usable afterwards, and nothing was queued for the refusals.
    await send(world, APP_ADDRESS, world.app_password, APP_ADDRESS, message(APP_ADDRESS))
    assert len(await world.sink.wait_for(1)) == 1


async def test_a_half_sent_message_is_not_queued(world: MailWorld) -> None:
    def run() -> None:
        client = world.smtp("app")
        client.login(APP_ADDRESS, world.app_password)
        client.mail(APP_ADDRESS)
        client.rcpt(RCPT)
        client.docmd("DATA")
        client.send(message(APP_ADDRESS).encode())  # no final dot: the client goes away
        client.sock.close()

    await asyncio.to_thread(run)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    # The server notices the hang-up; nothing may reach the queue.
    while any(p.in_transaction for s in world.servers
              for p in getattr(getattr(s, "_sessions", None), "protocols", ())):
        assert loop.time() < deadline
        await asyncio.sleep(0.05)
    assert len(world.queue) == 0
    assert list((world.spool_dir / "queue").iterdir()) == []


async def _audit(world: MailWorld, action: str) -> list:  # type: ignore[type-arg]
    await world.audit.flush()
    return await world.store.audit.recent(action=action)


class OneConnection:
    """A connection limiter (the rate-limit package's duck type) allowing one per source."""

    def __init__(self) -> None:
        self.open: dict[str, int] = {}

    def acquire(self, key: str) -> bool:
        if self.open.get(key, 0) >= 1:
            return False
        self.open[key] = self.open.get(key, 0) + 1
        return True

    def release(self, key: str) -> None:
        self.open[key] -= 1


async def test_a_connection_limiter_refuses_with_421_before_the_greeting(
    tmp_path: Path,
) -> None:
    from smtp.server import LIMITER_EXTRA

    limiter = OneConnection()
    async with mail_world(tmp_path, extras={LIMITER_EXTRA: limiter}) as world:
        def run() -> tuple[int, int]:
            with world.smtp("app") as first:
                code = first.noop()[0]
                try:
                    world.smtp("app")
                except smtplib.SMTPConnectError as refused:
                    return code, refused.smtp_code
                return code, 0

        assert await asyncio.to_thread(run) == (250, 421)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while limiter.open.get("127.0.0.1"):
            assert loop.time() < deadline, "the first connection was never released"
            await asyncio.sleep(0.05)


async def test_stop_lets_a_transaction_under_way_finish_then_closes_with_421(
    tmp_path: Path,
) -> None:
    from smtp.server import SubmissionServer

    async with mail_world(tmp_path) as world:
        app_server = next(s for s in world.servers
                          if isinstance(s, SubmissionServer) and s.name.endswith("-app"))
        in_mail = asyncio.Event()
        stopped = threading.Event()
        loop = asyncio.get_running_loop()

        def run() -> tuple[int, int]:
            client = world.smtp("app")
            client.login(APP_ADDRESS, world.app_password)
            client.mail(APP_ADDRESS)
            client.rcpt(RCPT)
            loop.call_soon_threadsafe(in_mail.set)
            code, _ = client.data(message(APP_ADDRESS).encode())
            assert stopped.wait(10)
            try:
                after = client.noop()[0]
            except smtplib.SMTPServerDisconnected:
                after = 421
            client.close()
            return code, after

        client = asyncio.create_task(asyncio.to_thread(run))
        await asyncio.wait_for(in_mail.wait(), 10)
        await app_server.stop(5.0)
        stopped.set()
        code, after = await asyncio.wait_for(client, 10)
        assert code == 250  # the transaction under way finished
        assert after == 421  # then the session was closed ("service shutting down")
        assert len(await world.sink.wait_for(1)) == 1
