"""``gateway mail …`` run as a real process against a SQLite store and a spool on disk."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from gateway.store import open_store
from smtp import dkim
from smtp.spool import Envelope, Spool
from tests.gateway_process import clean_env

TIMEOUT = 60.0


async def gateway(tmp_path: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    env = clean_env({
        "GATEWAY_RUNTIME_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_AUTH_ARGON2_MEMORY_KIB": "1024",
        "GATEWAY_AUTH_ARGON2_TIME_COST": "1",
    })
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *args, env=env, cwd=tmp_path,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(
        process.communicate(stdin.encode() if stdin is not None else None), TIMEOUT
    )
    return process.returncode or 0, out.decode(), err.decode()


async def ok_json(tmp_path: Path, *args: str, stdin: str | None = None) -> Any:
    code, out, err = await gateway(tmp_path, *args, "--json", stdin=stdin)
    assert code == 0, err
    return json.loads(out)


async def test_domains_addresses_and_the_dkim_record(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    added = await ok_json(tmp_path, "mail", "domain", "add", "example.com")
    assert added["dkim_key"] is True
    assert added["masquerade"] is False
    store = await open_store(f"sqlite:///{tmp_path / 'data' / 'gateway.db'}")
    try:
        from gateway.auth import hasher_for
        from tests.smtp_world import AUTH

        hasher = hasher_for(AUTH)
        await store.users.add(username="alice", email="alice@elsewhere.test",
                              password_hash=hasher.hash_now("x" * 12))
        hasher.close()
        record = await ok_json(tmp_path, "mail", "dkim", "example.com")
        domain = await store.mail.domain("example.com")
        assert domain.dkim_private_key
        expected = dkim.dns_record("example.com", domain.dkim_selector, domain.dkim_private_key)
        assert record["name"] == "gateway._domainkey.example.com"
        assert record["value"] == expected.value
        code, zone, _ = await gateway(tmp_path, "mail", "dkim", "example.com")
        assert code == 0
        assert zone.startswith("gateway._domainkey.example.com. IN TXT")

        box = await ok_json(tmp_path, "mail", "mailbox", "add", "alice@example.com",
                            "--owner", "alice")
        assert box["kind"] == "mailbox"
        alias = await ok_json(tmp_path, "mail", "alias", "add", "sales@example.com",
                              "--to", "alice@example.com")
        assert alias["target"] == "alice@example.com"
        lst = await ok_json(tmp_path, "mail", "list", "add", "team@example.com",
                            "--member", "alice@example.com", "--member", "x@remote.test")
        assert lst["members"] == ["alice@example.com", "x@remote.test"]
        aliases = await ok_json(tmp_path, "mail", "alias", "list")
        assert [a["address"] for a in aliases] == ["sales@example.com"]
        code, table, _ = await gateway(tmp_path, "mail", "mailbox", "list")
        assert code == 0
        assert "alice@example.com  alice" in table

        changed = await ok_json(
            tmp_path, "mail", "domain", "set", "example.com", "--masquerade", "on",
            "--relay", "external-smtp", "--relay-host", "smtp.relay.test", "--relay-port",
            "587", "--relay-username", "u", "--relay-password-stdin", stdin="s3cret\n",
        )
        assert changed["masquerade"] is True
        assert changed["relay"]["password"] == "\u25cf" * 8
        assert (await store.mail.domain("example.com")).relay["password"] == "s3cret"
        code, listing, _ = await gateway(tmp_path, "mail", "domain", "list")
        assert "s3cret" not in listing
        assert "external-smtp" in listing

        code, _, err = await gateway(tmp_path, "mail", "alias", "remove", "alice@example.com")
        assert code == 1
        assert "is a mailbox" in err
        code, _, err = await gateway(tmp_path, "mail", "mailbox", "add", "nobody",
                                     "--owner", "alice")
        assert code == 2
        await ok_json(tmp_path, "mail", "alias", "remove", "sales@example.com")
        assert [b.address for b in await store.mail.mailboxes("example.com")] == [
            "alice@example.com", "team@example.com"]
    finally:
        await store.close()


async def test_queue_list_retry_delete(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "data" / "mail" / "spool")
    spool.prepare()
    first = await spool.accept(
        Envelope(id="0000000000000001aaaaaaaaaa", sender="app@example.com",
                 recipients=("a@remote.test", "b@remote.test"), arrived_at=time.time()),
        b"Subject: one\r\n\r\nbody\r\n",
    )
    await spool.record(first.id, [
        {"event": "delivered", "rcpt": "a@remote.test", "at": time.time(), "reply": "250 ok"},
        {"event": "deferred", "rcpt": "b@remote.test", "at": time.time(), "attempts": 1,
         "next": time.time() + 3600, "reply": "451 4.3.2 later"},
    ])
    second = await spool.accept(
        Envelope(id="0000000000000002bbbbbbbbbb", sender="app@example.com",
                 recipients=("c@remote.test",), arrived_at=time.time()),
        b"Subject: two\r\n\r\nbody\r\n",
    )
    spool.close()

    listing = await ok_json(tmp_path, "mail", "queue", "list")
    assert [m["id"] for m in listing] == [first.id, second.id]
    states = {r["address"]: r for r in listing[0]["recipients"]}
    assert states["a@remote.test"]["status"] == "delivered"
    assert states["b@remote.test"]["status"] == "pending"
    assert states["b@remote.test"]["last_reply"] == "451 4.3.2 later"
    code, table, _ = await gateway(tmp_path, "mail", "queue", "list")
    assert code == 0
    assert "451 4.3.2 later" in table

    retried = await ok_json(tmp_path, "mail", "queue", "retry", first.id)
    assert retried == {"retried": [first.id], "missing": []}
    reloaded = Spool(tmp_path / "data" / "mail" / "spool")
    message = reloaded.load(first.id)
    assert message is not None
    assert message.recipients["b@remote.test"].next_attempt <= time.time()
    assert message.recipients["a@remote.test"].status == "delivered"

    deleted = await ok_json(tmp_path, "mail", "queue", "delete", second.id)
    assert deleted == {"deleted": [second.id], "missing": []}
    assert reloaded.ids() == [first.id]
    reloaded.close()
    code, _, err = await gateway(tmp_path, "mail", "queue", "delete", second.id)
    assert code == 1
    assert "not in the queue" in err
    code, _, err = await gateway(tmp_path, "mail", "queue", "delete", "../etc/passwd")
    assert code == 2
