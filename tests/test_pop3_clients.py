"""POP3 and POP3S over real sockets with poplib, over the same Maildirs as IMAP."""

from __future__ import annotations

import asyncio
import poplib
import subprocess
from pathlib import Path

from tests.mail_in_world import (
    APP_ADDRESS,
    MailInWorld,
    clean_env,
    insecure_client_context,
    mail_in_world,
    swaks,
)


async def deliver(world: MailInWorld, to: str, subject: str) -> None:
    done = await asyncio.to_thread(
        subprocess.run, swaks(world.ports["inbound"], to, subject=subject),
        capture_output=True, text=True, timeout=60, env=clean_env(),
    )
    assert done.returncode == 0, done.stdout + done.stderr


def pop_session(port: int, user: str, password: str, *, tls: bool) -> dict[str, object]:
    client: poplib.POP3 = (
        poplib.POP3_SSL("127.0.0.1", port, timeout=20, context=insecure_client_context())
        if tls else poplib.POP3("127.0.0.1", port, timeout=20)
    )
    seen: dict[str, object] = {}
    try:
        client.user(user)
        seen["pass"] = client.pass_(password)
        seen["stat"] = client.stat()
        seen["uidl"] = client.uidl()[1]
        seen["retr"] = b"\r\n".join(client.retr(1)[1])
        seen["top"] = client.top(2, 0)[1]
        seen["dele"] = client.dele(1)
    finally:
        client.quit()
    again = poplib.POP3("127.0.0.1", port, timeout=20) if not tls else poplib.POP3_SSL(
        "127.0.0.1", port, timeout=20, context=insecure_client_context())
    try:
        again.user(user)
        again.pass_(password)
        seen["stat_after"] = again.stat()
        seen["uidl_after"] = again.uidl()[1]
    finally:
        again.quit()
    return seen


async def test_poplib_retrieves_and_deletes(tmp_path: Path) -> None:
    async with mail_in_world(tmp_path) as world:
        await deliver(world, APP_ADDRESS, "pop one")
        await deliver(world, APP_ADDRESS, "pop two")
        seen = await asyncio.to_thread(
            pop_session, world.ports["pop3"], APP_ADDRESS, world.app_password, tls=False
        )
        left = world.delivered(APP_ADDRESS)
    assert seen["pass"] == b"+OK Logged in"
    stat = seen["stat"]
    assert isinstance(stat, tuple)
    assert stat[0] == 2
    assert b"Subject: pop one" in seen["retr"]  # type: ignore[operator]
    assert any(b"Subject: pop two" in line for line in seen["top"])  # type: ignore[union-attr]
    assert seen["stat_after"][0] == 1  # type: ignore[index]
    # The UIDL of the message left is the one it had before the other was deleted.
    uidls = seen["uidl"]
    assert isinstance(uidls, list)
    assert seen["uidl_after"] == [b"1 " + uidls[1].split(b" ")[1]]
    assert len(left) == 1


async def test_pop3s_and_refusals(tmp_path: Path) -> None:
    async with mail_in_world(tmp_path) as world:
        await deliver(world, APP_ADDRESS, "over tls")
        await deliver(world, APP_ADDRESS, "over tls too")
        seen = await asyncio.to_thread(
            pop_session, world.ports["pop3s"], APP_ADDRESS, world.app_password, tls=True
        )
        assert seen["stat"][0] == 2  # type: ignore[index]
        assert seen["stat_after"][0] == 1  # type: ignore[index]

        def wrong() -> str:
            client = poplib.POP3("127.0.0.1", world.ports["pop3"], timeout=20)
            try:
                client.user(APP_ADDRESS)
                client.pass_("f" * 48)
            except poplib.error_proto as exc:
                return str(exc)
            finally:
                client.quit()
            return "accepted"

        assert "-ERR [AUTH] Authentication failed" in await asyncio.to_thread(wrong)
