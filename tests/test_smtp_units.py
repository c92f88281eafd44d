"""Units of the relay without sockets, and hypothesis fuzzing of the parsers written here:
SMTP replies (client), header sections and sender addresses (submission), the spool log."""

from __future__ import annotations

import asyncio
import errno
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.auth import (
    AuthUnavailable,
    BadCredentials,
    Inactive,
    Locked,
    NoAccess,
    RateLimited,
    UnknownAccount,
)
from smtp import message as msg
from smtp.answers import answer
from smtp.auth import INVALID, TRY_LATER, answer_for
from smtp.bounce import status_of
from smtp.client import ProtocolError, Reply, dot_stuff, parse_reply_line, read_reply
from smtp.errors import (
    HeaderTooBig,
    MalformedMessage,
    SenderNotAllowed,
    SpoolFull,
    SubmissionRefused,
)
from smtp.queue import RetrySchedule
from smtp.senders import SenderRights
from smtp.spool import Envelope, QueuedMessage, RecipientState, Spool


def run_private(coro):  # type: ignore[no-untyped-def]
    """Run ``coro`` on a loop of its own: the tests' shared loop (and asyncio.run, which the
    loop policy would hand that same loop) must not be closed by a sync test."""
    loop = asyncio.SelectorEventLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
LIMITS = {"max_header_bytes": 4096, "max_fields": 50}


# -- replies -----------------------------------------------------------------------------

@FUZZ
@given(st.binary(max_size=300))
def test_reply_line_parser_answers_or_refuses(line: bytes) -> None:
    try:
        code, last, text = parse_reply_line(line)
    except ProtocolError:
        return
    assert 200 <= code <= 599
    assert isinstance(last, bool)
    assert isinstance(text, str)


@FUZZ
@given(st.lists(st.binary(max_size=80), max_size=8))
def test_reply_reader_never_fails_otherwise(chunks: list[bytes]) -> None:
    async def run() -> None:
        reader = asyncio.StreamReader(limit=1024)
        reader.feed_data(b"".join(chunks))
        reader.feed_eof()
        try:
            reply = await read_reply(reader)
        except ProtocolError:
            return
        assert isinstance(reply, Reply)
        assert reply.lines

    run_private(run())


def test_multiline_reply() -> None:
    async def run() -> Reply:
        reader = asyncio.StreamReader()
        reader.feed_data(b"250-mx.test\r\n250-SIZE 100\r\n250 STARTTLS\r\n")
        return await read_reply(reader)

    reply = run_private(run())
    assert reply.code == 250
    assert reply.lines == ("mx.test", "SIZE 100", "STARTTLS")


@FUZZ
@given(st.lists(st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
                min_size=1, max_size=12))
def test_dot_stuffing_round_trips_and_never_ends_early(lines: list[bytes]) -> None:
    data = b"\r\n".join(lines) + b"\r\n"
    stuffed = dot_stuff(data)
    body = stuffed[: -len(b".\r\n")]
    assert b"\r\n.\r\n" not in b"\r\n" + body
    unstuffed = b"\r\n".join(
        line[1:] if line.startswith(b".") else line for line in body.split(b"\r\n")
    )
    assert unstuffed == data


# -- header sections ---------------------------------------------------------------------

@FUZZ
@given(st.binary(max_size=2000))
def test_header_parser_answers_or_refuses_with_a_type(data: bytes) -> None:
    data = msg.normalize_newlines(data)
    try:
        parsed = msg.parse(data, **LIMITS)
    except (HeaderTooBig, MalformedMessage):
        return
    assert len(parsed.fields) <= LIMITS["max_fields"]
    for key in msg.SENDER_FIELDS:
        try:
            found = msg.sender_addresses(parsed, key)
        except MalformedMessage:
            continue
        assert all("@" in a for a in found)


field_names = st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,15}\Z")
field_values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@FUZZ
@given(st.lists(st.tuples(field_names, field_values), min_size=1, max_size=20),
       st.binary(max_size=200))
def test_well_formed_messages_round_trip(fields: list[tuple[str, str]], body: bytes) -> None:
    body = msg.normalize_newlines(body)
    head = b"".join(f"{n}: {v}\r\n".encode() for n, v in fields)
    data = head + b"\r\n" + body
    parsed = msg.parse(data, **LIMITS)
    assert [f.name for f in parsed.fields] == [n for n, _ in fields]
    assert parsed.to_bytes() == data


@FUZZ
@given(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
       st.sampled_from(["evil@bank.test", "Evil@Bank.Test"]))
def test_any_address_in_from_is_seen_whatever_surrounds_it(noise: str, hidden: str) -> None:
    # Whatever a display name, comment or broken syntax around it, an address-looking token
    # in From is reported, so the sender check cannot be walked around.
    for value in (f'"{noise}" <{hidden}>', f"{hidden} ({noise})", f"{noise} <{hidden}>",
                  f"<ok@example.com>, {hidden}", f'"{hidden}" <ok@example.com>'):
        parsed = msg.parse(f"From: {value}\r\n\r\n".encode(), **LIMITS)
        try:
            found = msg.sender_addresses(parsed, "from")
        except MalformedMessage:
            continue
        assert hidden.lower() in found or any(hidden.lower() in f for f in found), (value, found)


def test_header_limits_and_folding() -> None:
    with pytest.raises(HeaderTooBig):
        msg.parse(b"X: " + b"a" * 5000 + b"\r\n\r\n", **LIMITS)
    with pytest.raises(HeaderTooBig):
        msg.parse(b"".join(b"X: y\r\n" for _ in range(51)) + b"\r\n", **LIMITS)
    with pytest.raises(MalformedMessage):
        msg.parse(b" continuation first\r\n\r\n", **LIMITS)
    parsed = msg.parse(b"From: A\r\n  <a@example.com>\r\n\r\nbody", **LIMITS)
    assert msg.sender_addresses(parsed, "from") == ["a@example.com"]
    with pytest.raises(MalformedMessage):
        msg.sender_addresses(msg.parse(b"From: undisclosed:;\r\n\r\n", **LIMITS), "from")


def test_fix_up_adds_what_is_missing_and_drops_bcc() -> None:
    parsed = msg.parse(b"To: x@r.test\r\nBcc: hidden@r.test\r\n\r\nbody\r\n", **LIMITS)
    fixed = msg.fix_up(parsed, envelope_sender="a@example.com", hostname="mx.example.com",
                       received="Received: by mx.example.com")
    keys = [f.key for f in fixed.fields]
    assert keys[0] == "received"
    assert "bcc" not in keys
    assert {"from", "date", "message-id"} <= set(keys)
    assert msg.sender_addresses(fixed, "from") == ["a@example.com"]
    assert fixed.body == b"body\r\n"


def test_bare_newlines_become_crlf_so_data_cannot_be_smuggled() -> None:
    assert msg.normalize_newlines(b"a\n.\nb\rc\r\n") == b"a\r\n.\r\nb\r\nc\r\n"


# -- policy, answers, schedule -----------------------------------------------------------

def test_sender_rights_allow_tags_only_of_own_addresses() -> None:
    rights = SenderRights("app", frozenset({"wordpress.app@example.com"}))
    assert rights.owns("wordpress.app", "example.com")
    assert rights.owns("wordpress.app+news", "example.com")
    assert not rights.owns("wordpress", "example.com")
    assert not rights.owns("wordpress.app", "example.org")


def test_one_table_for_auth_answers() -> None:
    for error in (BadCredentials(), UnknownAccount(), NoAccess(), Inactive()):
        assert answer_for(error) == INVALID
    for error in (RateLimited(3, "source"), Locked(60, "account"), AuthUnavailable("db")):
        assert answer_for(error) == TRY_LATER
    assert answer_for(ValueError()) is None


def test_refusals_answer_one_line_with_their_code() -> None:
    assert answer(SenderNotAllowed("x may not\r\nsend")) == "553 5.7.1 x may not send"
    assert answer(SpoolFull("disk")).startswith("452 4.3.1")
    assert answer(SubmissionRefused("?")).startswith("451 4.3.0")


def test_retry_schedule_doubles_up_to_the_maximum() -> None:
    schedule = RetrySchedule(300, 4000, 5 * 86400)
    assert [schedule.delay(n) for n in range(1, 7)] == [300, 600, 1200, 2400, 4000, 4000]
    assert schedule.delay(10_000) == 4000


def test_bounce_status_comes_from_the_reply() -> None:
    assert status_of("550 5.1.1 No such user") == "5.1.1"
    assert status_of("451 4.3.2 later (gave up)") == "5.0.0"


# -- the spool ---------------------------------------------------------------------------

def test_log_replay_is_per_recipient_and_ignores_duplicates() -> None:
    env = Envelope("m1", "a@example.com", ("x@r.test", "y@r.test"), 1.0)
    message = QueuedMessage(env, {r: RecipientState(r) for r in env.recipients})
    message.apply({"event": "delivered", "rcpt": "x@r.test", "at": 2.0, "reply": "250"})
    message.apply({"event": "failed", "rcpt": "x@r.test", "at": 3.0, "reply": "550"})
    message.apply({"event": "deferred", "rcpt": "y@r.test", "at": 2.0, "attempts": 1,
                   "next": 9.0})
    message.apply({"event": "unknown-future-event"})
    assert message.recipients["x@r.test"].status == "delivered"
    assert [r.address for r in message.pending()] == ["y@r.test"]
    assert message.next_attempt() == 9.0
    message.apply({"event": "retry", "at": 4.0})
    assert message.next_attempt() == 4.0


async def test_full_disk_refuses_with_452_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path)
    spool.prepare()
    real_write = os.write

    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("smtp.spool.os.write", full)
    env = Envelope("m1", "a@example.com", ("x@r.test",), time.time())
    with pytest.raises(SpoolFull) as refused:
        await spool.accept(env, b"Subject: x\r\n\r\nbody\r\n")
    assert answer(refused.value).startswith("452 4.3.1")
    assert list((tmp_path / "tmp").iterdir()) == []
    assert spool.ids() == []
    monkeypatch.setattr("smtp.spool.os.write", real_write)
    queued = await spool.accept(env, b"Subject: x\r\n\r\nbody\r\n")
    assert spool.ids() == [queued.id]
    assert await spool.content(queued.id) == b"Subject: x\r\n\r\nbody\r\n"
    spool.close()


async def test_a_log_line_cut_by_a_crash_is_ignored(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.prepare()
    queued = await spool.accept(
        Envelope("m2", "a@example.com", ("x@r.test",), time.time()), b"x\r\n"
    )
    with open(tmp_path / "queue" / "m2.log", "ab") as fh:
        fh.write(b'{"event":"delivered","rcpt":"x@r.test","at":1')
    loaded = spool.load(queued.id)
    assert loaded is not None
    assert loaded.pending()
    (tmp_path / "tmp" / "half.msg").write_bytes(b"half")
    spool.prepare()  # a restart drops unacknowledged half-writes
    assert list((tmp_path / "tmp").iterdir()) == []
    spool.close()
