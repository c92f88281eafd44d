"""A crash during delivery loses nothing and duplicates nothing (a real process, killed)."""

from __future__ import annotations

import asyncio
import smtplib
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from gateway.store import open_store
from smtp.maildir.store import MailboxStore
from tests.mail_in_crash_child import CRASH_CODE
from tests.mail_in_world import ALICE, BOB, DOMAIN, seed

START_DEADLINE = 30.0


@asynccontextmanager
async def child(tmp: Path, crash: str) -> AsyncIterator[tuple[subprocess.Popen[str], int]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.mail_in_crash_child", str(tmp), crash],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), START_DEADLINE)
        yield proc, int(line)
    finally:
        if proc.poll() is None:
            proc.kill()
        await asyncio.to_thread(proc.wait, START_DEADLINE)


def send(port: int, rcpts: list[str], subject: str) -> str:
    """One message; answers the DATA reply, or how the connection ended."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
            client.ehlo("mx.remote.test")
            client.mail("a@remote.test")
            for rcpt in rcpts:
                client.rcpt(rcpt)
            code, _ = client.data(f"Subject: {subject}\r\n\r\nbody\r\n".encode())
            return str(code)
    except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
        return f"dropped: {type(exc).__name__}"


def copies(tmp: Path, address: str, subject: str) -> int:
    box = MailboxStore(tmp / "data" / "mail" / "boxes", hostname="x").path_for(address)
    return sum(
        1 for sub in ("new", "cur") if (box / sub).is_dir() for p in (box / sub).iterdir()
        if f"Subject: {subject}".encode() in p.read_bytes()
    )


async def seeded(tmp: Path) -> None:
    store = await open_store(f"sqlite:///{tmp / 'store.db'}")
    try:
        await seed(store)
    finally:
        await store.close()


async def test_crash_after_the_250_mid_list_delivery(tmp_path: Path) -> None:
    await seeded(tmp_path)
    async with child(tmp_path, "after-first-link") as (proc, port):
        reply = await asyncio.to_thread(send, port, [f"team@{DOMAIN}"], "list mail")
        assert await asyncio.to_thread(proc.wait, START_DEADLINE) == CRASH_CODE
    assert reply == "250"
    # One of the two mailboxes got it before the crash, the other not yet.
    assert copies(tmp_path, ALICE, "list mail") + copies(tmp_path, BOB, "list mail") == 1
    async with child(tmp_path, "none") as (_, port):
        # The restart finished the delivery from the journal before listening.
        assert copies(tmp_path, ALICE, "list mail") == 1
        assert copies(tmp_path, BOB, "list mail") == 1
        # And a second restart adds nothing.
    async with child(tmp_path, "none"):
        assert copies(tmp_path, ALICE, "list mail") == 1
        assert copies(tmp_path, BOB, "list mail") == 1
    assert not list((tmp_path / "data" / "mail" / "boxes" / ".journal").iterdir())


async def test_crash_before_the_250_keeps_nothing_and_the_retry_delivers_once(
    tmp_path: Path,
) -> None:
    await seeded(tmp_path)
    async with child(tmp_path, "before-link") as (proc, port):
        reply = await asyncio.to_thread(send, port, [BOB], "single")
        assert await asyncio.to_thread(proc.wait, START_DEADLINE) == CRASH_CODE
    assert reply.startswith("dropped")
    assert copies(tmp_path, BOB, "single") == 0
    async with child(tmp_path, "none") as (_, port):
        # The sender had no 250, so it retries: exactly one copy.
        assert await asyncio.to_thread(send, port, [BOB], "single") == "250"
    assert copies(tmp_path, BOB, "single") == 1
