"""Mail the relay accepts for a domain this gateway receives lands in the local mailbox.

The outbound queue hands such recipients to our own inbound listener, so they meet the
same recipient checks and Maildir delivery as mail from outside; remote recipients of the
same message still go to their MX.
"""

from __future__ import annotations

import asyncio
import imaplib
from pathlib import Path

from tests.smtp_world import ALICE_PASSWORD, DOMAIN, REMOTE, MailWorld, mail_world
from tests.test_mail_out_delivery import send, wait_until


def _inbox_subjects(world: MailWorld) -> list[bytes]:
    with imaplib.IMAP4("127.0.0.1", world.ports["imap"], timeout=20) as imap:
        imap.login("alice", ALICE_PASSWORD)
        imap.select("INBOX", readonly=True)
        _, found = imap.search(None, "ALL")
        subjects = []
        for number in found[0].split():
            _, parts = imap.fetch(number, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            header = parts[0]
            assert isinstance(header, tuple)
            subjects.append(header[1].strip())
        return subjects


async def test_an_app_mailing_a_local_mailbox_and_a_remote_one(tmp_path: Path) -> None:
    async with mail_world(tmp_path) as world:
        await world.store.mail.update_domain(DOMAIN, receives=True)
        await send(world, [f"alice@{DOMAIN}", f"someone@{REMOTE}"], subject="both ways")
        (remote,) = await world.sink.wait_for(1)
        assert b"Subject: both ways" in remote.data
        assert remote.recipients == [f"someone@{REMOTE}"]
        await wait_until(lambda: len(world.queue) == 0)
        subjects = await asyncio.to_thread(_inbox_subjects, world)
        assert subjects == [b"Subject: both ways"]
        await world.audit.flush()
        delivered = await world.store.audit.recent(action="mail.deliver")
        assert any(f"alice@{DOMAIN}" in (event.reason or "") for event in delivered)


async def test_an_unknown_local_recipient_bounces_back_to_the_sender(tmp_path: Path) -> None:
    async with mail_world(tmp_path) as world:
        await world.store.mail.update_domain(DOMAIN, receives=True)
        await send(world, [f"nobody@{DOMAIN}"], subject="lost")
        await wait_until(lambda: len(world.queue) == 0)
        await world.audit.flush()
        failed = await world.store.audit.recent(action="mail.fail")
        assert any(f"nobody@{DOMAIN}" in (event.reason or "") for event in failed)
