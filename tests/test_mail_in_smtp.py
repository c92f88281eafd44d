"""Inbound SMTP over real sockets with swaks: recipients, aliases, lists, DNSBL, quota."""

from __future__ import annotations

import asyncio
import smtplib
import subprocess
from pathlib import Path

from tests.mail_in_world import (
    ALICE,
    APP_ADDRESS,
    BOB,
    DOMAIN,
    LISTED_SOURCE,
    TINY_QUOTA,
    MailInWorld,
    clean_env,
    mail_in_world,
    swaks,
)

DEADLINE = 10.0


async def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60, env=clean_env()
    )


def smtp_session(
    port: int, rcpts: list[str], data: bytes | None, options: list[str] | None = None
) -> list[int]:
    """One transaction with smtplib (in a thread): the RCPT codes, then DATA's if sent."""
    codes: list[int] = []
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.ehlo("mx.remote.test")
        assert client.has_extn("size")
        client.mail("a@remote.test", options=options or [])
        for rcpt in rcpts:
            codes.append(client.rcpt(rcpt)[0])
        if data is not None and 250 in codes:
            try:
                codes.append(client.data(data)[0])
            except smtplib.SMTPDataError as refused:
                codes.append(refused.smtp_code)
    return codes


async def wait_for_messages(world: MailInWorld, address: str, count: int) -> list[Path]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while loop.time() < deadline:
        found = world.delivered(address)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"{address}: {len(world.delivered(address))} of {count} messages")


async def test_swaks_delivers_to_the_apps_inbox_and_to_a_users_alias(tmp_path: Path) -> None:
    async with mail_in_world(tmp_path) as world:
        port = world.ports["inbound"]
        done = await run(swaks(port, APP_ADDRESS, subject="for the app"))
        assert done.returncode == 0, done.stdout + done.stderr
        done = await run(swaks(port, f"sales@{DOMAIN}", subject="for sales"))
        assert done.returncode == 0, done.stdout + done.stderr
        (app_copy,) = world.delivered(APP_ADDRESS)
        (alice_copy,) = world.delivered(ALICE)
        assert b"Subject: for the app" in app_copy.read_bytes()
        text = alice_copy.read_bytes()
        assert b"Subject: for sales" in text
        assert text.startswith(b"Return-Path: <someone@remote.test>\r\nReceived: from ")


async def test_unknown_recipient_is_refused_at_rcpt(tmp_path: Path) -> None:
    async with mail_in_world(tmp_path) as world:
        done = await run(swaks(world.ports["inbound"], f"nobody@{DOMAIN}"))
        assert done.returncode != 0
        assert "550 5.1.1" in done.stdout + done.stderr
        done = await run(swaks(world.ports["inbound"], "someone@quiet.test"))
        assert "550 5.7.1" in done.stdout + done.stderr
        codes = await asyncio.to_thread(
            smtp_session, world.ports["inbound"], [f"nobody@{DOMAIN}", BOB],
            b"Subject: partial\r\n\r\nonly bob\r\n",
        )
        assert codes == [550, 250, 250]
        assert len(world.delivered(BOB)) == 1


async def test_subaddress_list_and_catch_all(tmp_path: Path) -> None:
    async with mail_in_world(tmp_path) as world:
        port = world.ports["inbound"]
        for to in (f"alice+news@{DOMAIN}", f"team@{DOMAIN}", "whoever@catchall.test"):
            done = await run(swaks(port, to, subject=f"to {to}"))
            assert done.returncode == 0, done.stdout + done.stderr
        alice = await wait_for_messages(world, ALICE, 2)
        bob = await wait_for_messages(world, BOB, 2)
        assert {b"Subject: to alice+news@example.com" in p.read_bytes() for p in alice} == {
            True, False}
        subjects = sorted(p.read_bytes().split(b"Subject: ")[1].split(b"\r\n")[0] for p in bob)
        assert subjects == [b"to team@example.com", b"to whoever@catchall.test"]
        # One copy on disk for the list: the same inode in both mailboxes.
        team = [p for p in alice if b"to team@" in p.read_bytes()]
        assert team[0].stat().st_nlink >= 2


async def test_dnsbl_listed_sender_is_refused(tmp_path: Path) -> None:
    async with mail_in_world(tmp_path) as world:
        port = world.ports["inbound"]
        done = await run(swaks(port, BOB, local=LISTED_SOURCE))
        assert done.returncode != 0
        out = done.stdout + done.stderr
        assert "554 5.7.1" in out
        assert "bl.test" in out
        assert world.delivered(BOB) == []
        done = await run(swaks(port, BOB, local="127.0.0.1"))
        assert done.returncode == 0, done.stdout + done.stderr
        assert len(world.delivered(BOB)) == 1


async def test_dnsbl_outage_lets_mail_in(tmp_path: Path) -> None:
    async with mail_in_world(tmp_path, dns_port=9, dns_timeout=0.3) as world:
        done = await run(swaks(world.ports["inbound"], BOB, local=LISTED_SOURCE))
        assert done.returncode == 0, done.stdout + done.stderr


async def test_quota_exceeded_is_answered_552(tmp_path: Path) -> None:
    async with mail_in_world(tmp_path) as world:
        port = world.ports["inbound"]
        tiny = f"tiny@{DOMAIN}"
        done = await run(swaks(port, tiny, body="x" * 500))
        assert done.returncode == 0, done.stdout + done.stderr
        done = await run(swaks(port, tiny, body="\n".join(["y" * 60] * (TINY_QUOTA // 60))))
        assert done.returncode != 0
        assert "552 5.2.2" in done.stdout + done.stderr
        assert len(world.delivered(tiny)) == 1
        # Filling it up exactly, then even RCPT is refused.
        used = world.mailboxes.usage(tiny)
        filler = b"Subject: f\r\n\r\n" + b"z\r\n" * ((TINY_QUOTA - used - 400) // 3)
        codes = await asyncio.to_thread(smtp_session, port, [tiny], filler)
        assert codes == [250, 250]
        assert world.mailboxes.usage(tiny) <= TINY_QUOTA
        codes = await asyncio.to_thread(smtp_session, port, [tiny], None, ["SIZE=1000"])
        assert codes == [552]


async def test_size_limit_and_header_bomb(tmp_path: Path) -> None:
    async with mail_in_world(tmp_path, max_message_size=4096) as world:
        port = world.ports["inbound"]
        big = b"Subject: big\r\n\r\n" + (b"a" * 70 + b"\r\n") * 120
        assert await asyncio.to_thread(smtp_session, port, [BOB], big) == [250, 552]
        bomb = b"".join(b"X-H%d: v\r\n" % i for i in range(1200)) + b"\r\nbody\r\n"
        async with mail_in_world(tmp_path / "2") as roomy:
            codes = await asyncio.to_thread(smtp_session, roomy.ports["inbound"], [BOB], bomb)
            assert codes == [250, 552]
            assert roomy.delivered(BOB) == []
        assert world.delivered(BOB) == []


async def test_half_sent_message_is_not_delivered(tmp_path: Path) -> None:
    async with mail_in_world(tmp_path) as world:
        reader, writer = await asyncio.open_connection("127.0.0.1", world.ports["inbound"])
        await reader.readline()
        for line in (b"EHLO mx.remote.test", b"MAIL FROM:<a@remote.test>",
                     f"RCPT TO:<{BOB}>".encode(), b"DATA"):
            writer.write(line + b"\r\n")
            await writer.drain()
            while True:
                reply = await asyncio.wait_for(reader.readline(), DEADLINE)
                if reply[3:4] != b"-":
                    break
        assert reply.startswith(b"354")
        writer.write(b"Subject: cut\r\n\r\nhalf a mess")
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        # The next full message gets through; the cut one never shows.
        done = await run(swaks(world.ports["inbound"], BOB, subject="whole"))
        assert done.returncode == 0
        (only,) = world.delivered(BOB)
        assert b"Subject: whole" in only.read_bytes()
