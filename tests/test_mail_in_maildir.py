"""The Maildir layer without sockets: stable UIDs, flags, torn logs, quota; parsers fuzzed."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.mail.imap4 import IllegalQueryError, parseNestedParens

from smtp.imap import search
from smtp.imap.message import header_fields, select_fields, split_header
from smtp.inbound.dnsbl import query_name
from smtp.maildir import names
from smtp.maildir.store import MailboxStore
from smtp.maildir.uidlist import FILENAME

ADDRESS = "alice@example.com"


def drop(box: Path, unique: str, data: bytes = b"Subject: x\r\n\r\nbody\r\n") -> None:
    (box / "new").mkdir(parents=True, exist_ok=True)
    (box / "new" / unique).write_bytes(data)


def test_uids_are_stable_across_restarts_and_never_reused(tmp_path: Path) -> None:
    first = MailboxStore(tmp_path, hostname="h")
    folder = first.folder(ADDRESS)
    box = first.path_for(ADDRESS)
    for n in range(3):
        drop(box, f"100{n}.m{n}.h,S=25")
    folder.refresh(force=True)
    assert folder.uids() == [1, 2, 3]
    validity = folder.validity
    assert folder.set_flags(2, frozenset({"\\Seen"})) == frozenset({"\\Seen"})
    assert folder.expunge([3]) == [3]
    # A new process: the same UIDs for the same files, the expunged UID not given again.
    again = MailboxStore(tmp_path, hostname="h").folder(ADDRESS)
    assert again.uids() == [1, 2]
    assert again.validity == validity
    assert again.get(2).flags == frozenset({"\\Seen"})  # type: ignore[union-attr]
    drop(box, "1009.m9.h,S=25")
    again.refresh(force=True)
    assert again.uids() == [1, 2, 4]


def test_a_torn_uidlist_line_is_ignored(tmp_path: Path) -> None:
    store = MailboxStore(tmp_path, hostname="h")
    folder = store.folder(ADDRESS)
    drop(store.path_for(ADDRESS), "1000.a.h,S=25")
    folder.refresh(force=True)
    log = store.path_for(ADDRESS) / FILENAME
    with open(log, "ab") as fh:
        fh.write(b"7 half-writ")  # a crash in the middle of an append
    again = MailboxStore(tmp_path, hostname="h").folder(ADDRESS)
    assert again.uids() == [1]
    drop(store.path_for(ADDRESS), "1001.b.h,S=25")
    again.refresh(force=True)
    assert again.uids() == [1, 2]


def test_append_is_durable_and_counted_in_usage(tmp_path: Path) -> None:
    store = MailboxStore(tmp_path, hostname="h")
    folder = store.folder(ADDRESS)
    before = store.usage(ADDRESS)
    uid = folder.append(b"Subject: a\r\n\r\nx\r\n", frozenset({"\\Seen", "\\Bogus"}), 1.0e9)
    entry = folder.get(uid)
    assert entry is not None
    assert entry.flags == frozenset({"\\Seen"})
    assert folder.file_of(entry).name.endswith(":2,S")
    assert int(folder.internal_date(entry)) == 1_000_000_000
    assert store.usage(ADDRESS) == before + len(b"Subject: a\r\n\r\nx\r\n")
    assert not os.listdir(store.path_for(ADDRESS) / "tmp")


@given(st.text(max_size=80))
@settings(max_examples=300, deadline=None)
def test_maildir_names_parse_without_crashing(text: str) -> None:
    parsed = names.parse(text)
    if parsed is not None:
        assert "/" not in parsed.unique
        assert parsed.filename().startswith(parsed.unique)


@given(st.frozensets(st.sampled_from(sorted(names.FLAG_LETTERS))), st.integers(0, 10**9))
def test_flags_round_trip_through_the_file_name(flags: frozenset[str], size: int) -> None:
    unique = names.make_unique(1700000000, "tok", "host", size)
    parsed = names.parse(names.MaildirName(unique, flags, size).filename())
    assert parsed == names.MaildirName(unique, flags, size)


_TOKENS = st.sampled_from([
    "ALL", "SEEN", "UNSEEN", "NOT", "OR", "SUBJECT", "FROM", "HEADER", "X-A", "hello",
    "1:*", "UID", "2,4", "LARGER", "10", "SINCE", "1-Feb-2024", "BODY", "(", ")", "*", "\"",
    "KEYWORD", "ON", "bogus", "0", "4294967296",
])


@given(st.lists(_TOKENS, max_size=12))
@settings(max_examples=400, deadline=None)
def test_search_parser_accepts_or_refuses_cleanly(tokens: list[str]) -> None:
    line = " ".join(tokens).encode()
    try:
        query = parseNestedParens(line)
    except Exception:
        return  # Twisted's tokenizer refused it (answered BAD before we see it)
    with contextlib.suppress(IllegalQueryError):
        search.parse(query)


def test_deep_nesting_is_refused_not_recursed() -> None:
    query = [b"NOT"] * 5000 + [b"ALL"]
    try:
        search.parse(query)
    except IllegalQueryError:
        return
    raise AssertionError("accepted 5000 nested NOTs")


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_header_split_and_field_selection_never_lose_bytes(data: bytes) -> None:
    end = split_header(data)
    assert 0 <= end <= len(data)
    fields = header_fields(data[:end])
    chosen = select_fields(data[:end], ["subject"], False)
    assert chosen.endswith(b"\r\n")
    assert all(raw.endswith(b"\r\n") for _, raw in fields)


def test_dnsbl_query_names() -> None:
    assert query_name("192.0.2.99", "bl.test") == "99.2.0.192.bl.test"
    assert query_name("::ffff:192.0.2.99", "bl.test.") == "99.2.0.192.bl.test"
    assert query_name("2001:db8::1", "bl.test").startswith("1.0.0.0.0.0.0.0.")
