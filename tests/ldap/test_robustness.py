"""Hostile and careless clients: each gets a protocol answer or a clean close, and the
server keeps serving everyone else."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ldaptor.protocols import pureldap

from gateway.store import Store
from tests.ldap.clients import blocking, connect
from tests.ldap.conftest import populate
from tests.ldap.raw import RawClient, bind_request, encode, search_request
from tests.ldap.world import World, start_world

NOTICE = "1.3.6.1.4.1.1466.20036"


@pytest.fixture
async def tight(sqlite_store: Store, tmp_path: Path) -> AsyncIterator[World]:
    """A server with small limits, so the tests reach them quickly."""
    world = await start_world(
        sqlite_store, tmp_path, idle_timeout=1.0, max_pdu_bytes=4096,
        max_pending_output_bytes=16_384, max_connections_per_app=3, max_filter_depth=10,
    )
    try:
        yield await populate(world)
    finally:
        await world.server.stop(1.0)
        await world.audit.close()


async def still_serving(world: World) -> None:
    app = world.apps["wiki"]

    def ask() -> int:
        conn = connect(app.server, app.port, app.bind_dn, app.password)
        conn.search("ou=users,dc=cloudron", "(username=bob)", attributes=["username"])
        found = len(conn.response or [])
        conn.unbind()
        return found

    assert await blocking(ask) == 1


async def expect_notice(client: RawClient) -> None:
    message = await client.message()
    assert message is not None, "closed without a Notice of Disconnection"
    assert message.id == 0
    assert isinstance(message.value, pureldap.LDAPExtendedResponse)
    assert message.value.responseName == NOTICE.encode()
    assert message.value.resultCode == 2
    assert await client.closed()


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x01\x02\x03\x04",
        b"\x30\x03\x02\x05\x01",  # an element longer than the frame holding it
        b"\x30\x05\x02\x01\x01\x7e\x00",  # unknown application tag
        b"\x30\x80\x02\x01\x01\x00\x00",  # indefinite length
        b"\x30\x84\xff\xff\xff\xff",  # 4 GiB
        b"\x30\x06\x02\x01\x01\x60\x01\x02",  # bind whose content overruns
        b"\x30\x09\x02\x01\x01\x63\x04\x04\x00\x0a\x00",  # search with missing fields
    ],
)
async def test_malformed_input_gets_a_notice(tight: World, garbage: bytes) -> None:
    client = await RawClient.connect(tight.host, tight.port)
    await client.send(garbage)
    await expect_notice(client)
    await still_serving(tight)


async def test_oversized_request_is_refused_before_it_is_read(tight: World) -> None:
    client = await RawClient.connect(tight.host, tight.port)
    big = encode(bind_request("cn=" + "x" * 10_000 + ",ou=users,dc=cloudron", "pw"))
    await client.send(big[:64])  # the header already says it is too big
    await expect_notice(client)
    await still_serving(tight)


def tlv(tag: int, content: bytes) -> bytes:
    if len(content) < 0x80:
        return bytes((tag, len(content))) + content
    size = len(content).to_bytes(4, "big")
    return bytes((tag, 0x84)) + size + content


def deep_search(depth: int, message_id: int) -> bytes:
    """A search whose filter is ``depth`` NOTs around (objectClass=*), built by hand: the
    encoder of any library would recurse that deep itself."""
    flt = b"\x87\x0bobjectClass"
    for _ in range(depth):
        flt = tlv(0xA2, flt)
    base = b"\x04\x14ou=users,dc=cloudron"
    body = base + b"\x0a\x01\x02\x0a\x01\x00\x02\x01\x00\x02\x01\x00\x01\x01\x00" + flt \
        + b"\x30\x00"
    return tlv(0x30, b"\x02\x01" + bytes((message_id,)) + tlv(0x63, body))


def nested_not(depth: int) -> pureldap.LDAPFilter:
    node: pureldap.LDAPFilter = pureldap.LDAPFilter_present("objectClass")
    for _ in range(depth):
        node = pureldap.LDAPFilter_not(node)
    return node


@pytest.mark.parametrize("depth", [11, 60, 500])
async def test_deep_filters_are_answered(tight: World, depth: int) -> None:
    app = tight.apps["wiki"]
    client = await RawClient.connect(app.server, app.port)
    request = deep_search(depth, 7)
    assert len(request) < 4096
    await client.send(request)
    answer = await client.message()
    assert answer is not None
    assert answer.id == 7
    assert isinstance(answer.value, pureldap.LDAPSearchResultDone)
    assert answer.value.resultCode == 11  # adminLimitExceeded
    client.close()
    await still_serving(tight)


async def test_shallow_enough_filter_works(tight: World) -> None:
    app = tight.apps["wiki"]
    client = await RawClient.connect(app.server, app.port)
    await client.send(deep_search(9, 3))  # odd: matches nothing, but is answered
    answer = await client.message()
    assert isinstance(answer.value, pureldap.LDAPSearchResultDone)
    assert answer.value.resultCode == 0
    await client.send(encode(search_request(flt=nested_not(8), scope=0), message_id=4))
    entry = await client.message()
    assert isinstance(entry.value, pureldap.LDAPSearchResultEntry)
    client.close()


async def test_half_a_request_times_out(tight: World) -> None:
    client = await RawClient.connect(tight.host, tight.port)
    await client.send(encode(bind_request("cn=bob,ou=users,dc=cloudron", "x"))[:10])
    assert await client.closed(timeout=5.0)
    await still_serving(tight)


async def test_client_that_does_not_read(tight: World) -> None:
    """Pipelined searches, answers never read: the server pauses that client (bounded
    buffer), serves the others, and drops it at the idle timeout."""
    app = tight.apps["wiki"]
    sock = socket.create_connection((app.server, app.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader, writer = await asyncio.open_connection(sock=sock)
    requests = b"".join(
        encode(search_request(), message_id=n) for n in range(1, 3000)
    )
    writer.write(requests)
    await still_serving(tight)
    assert tight.server.book.open  # the slow client is still connected for now…
    slow = RawClient(reader, writer)
    # …and gone after the idle timeout, though it never read a byte.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while loop.time() < deadline and len(tight.server.book.open) > 0:
        await asyncio.sleep(0.1)
    assert not tight.server.book.open
    assert await slow.closed(timeout=1.0)
    await still_serving(tight)


async def test_per_app_connection_cap_answers_busy(tight: World) -> None:
    app = tight.apps["wiki"]
    held = [await RawClient.connect(app.server, app.port) for _ in range(3)]
    extra = await RawClient.connect(app.server, app.port)
    await extra.send(encode(search_request(), message_id=5))
    answer = await extra.message()
    assert answer is not None
    assert answer.value.resultCode == 51
    assert await extra.closed()
    for client in held:
        client.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while loop.time() < deadline and len(tight.server.book.open) > 0:
        await asyncio.sleep(0.05)
    await still_serving(tight)


async def test_thousands_of_idle_connections(world: World) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * 2000 + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    app = world.apps["wiki"]
    sockets = []
    loop = asyncio.get_running_loop()
    try:
        for batch in range(10):
            for _ in range(200):
                s = socket.socket()
                s.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    s.connect((world.host, world.port))
                sockets.append(s)
            # Let the server accept this batch before the listen backlog overflows.
            deadline = loop.time() + 10
            while loop.time() < deadline and len(world.server.book.open) < 200 * (batch + 1):
                await asyncio.sleep(0.01)
        assert len(world.server.book.open) >= 2000
        started = loop.time()
        await still_serving(world)
        assert loop.time() - started < 5
        assert app is not None
    finally:
        for s in sockets:
            s.close()


async def test_unbind_and_abandon(world: World) -> None:
    app = world.apps["wiki"]
    client = await RawClient.connect(app.server, app.port)
    await client.send(encode(pureldap.LDAPAbandonRequest(id=1), message_id=2))
    await client.send(encode(search_request(base="", scope=0), message_id=3))
    answer = await client.message()
    assert answer.id == 3  # the abandon got no answer, the search did
    await client.send(encode(pureldap.LDAPUnbindRequest(), message_id=4))
    assert await client.closed()
