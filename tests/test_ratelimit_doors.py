"""The lockout policy at each door, over real sockets with real clients (SPEC.md "Rate
limiting and lockout").

Each door runs with a real ``LockoutPolicy`` on ``memory://`` (an account waits after 3
distinct wrong passwords, is banned at 5) and is attacked from one loopback address while
its owner logs in from another: the attacker gets the door's own "try later" (even with the
right password while banned), the owner keeps getting in. LDAP and SMTP also show that one
wrong password repeated is never a lockout. The clock travels with time-machine across the
delays; nothing sleeps.
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import poplib
import smtplib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import ldap3
import pytest
import time_machine

from gateway.store import open_store
from ldap.wire import ResultCode
from ratelimit import AttemptPolicy, LockoutPolicy
from ratelimit.answers import try_later
from tests.ldap.world import PASSWORD as LDAP_PASSWORD
from tests.ldap.world import World, start_world
from tests.mail_in_world import ALICE, mail_in_world
from tests.mail_in_world import ALICE_PASSWORD as MAILBOX_PASSWORD
from tests.proxyauth_support import PASSWORD as WALL_PASSWORD
from tests.proxyauth_support import Wall, csrf_of, host, running_wall
from tests.ratelimit_doors_world import (
    ATTACKER,
    CLIENT_TIMEOUT,
    OWNER,
    START,
    STRANGER,
    Answers,
    Attempt,
    SourcedIMAP4,
    SourcedPOP3,
    attack_and_owner,
    blocking,
    lockout_policy,
    same_wrong_password,
)
from tests.smtp_world import ALICE_PASSWORD as SUBMISSION_PASSWORD
from tests.smtp_world import DOMAIN, insecure_client_context, mail_world


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
async def policy(clock: time_machine.Coordinates) -> AsyncIterator[LockoutPolicy]:
    lockout = lockout_policy()
    try:
        yield lockout
    finally:
        await lockout.close()


# -- LDAP: simple binds to cn=alice,ou=users,dc=cloudron from the app's own address -------

LDAP_DN = "cn=alice,ou=users,dc=cloudron"
LDAP = Answers(
    ok=(ResultCode.SUCCESS, ""),
    wrong=(ResultCode.INVALID_CREDENTIALS, ""),
    # The table's code (51 busy); the diagnostic message is ldap/results.py's own.
    later=(try_later("ldap", 1).code,
           "too many attempts or the directory is busy; try again later"),
)


def ldap_bind(server_host: str, port: int, source: str, password: str) -> tuple[int, str]:
    server = ldap3.Server(server_host, port=port, get_info=ldap3.NONE, connect_timeout=10)
    conn = ldap3.Connection(
        server, user=LDAP_DN, password=password, receive_timeout=int(CLIENT_TIMEOUT),
        raise_exceptions=False, source_address=source, source_port=0,
    )
    try:
        conn.open()
        conn.bind()
        return int(conn.result["result"]), str(conn.result["message"])
    finally:
        conn.unbind()


@contextlib.asynccontextmanager
async def wiki_directory(tmp_path: Path, policy: AttemptPolicy) -> AsyncIterator[World]:
    """A directory holding alice, with the app wiki binding to it, behind ``policy``."""
    store = await open_store(f"sqlite:///{tmp_path / 'store.db'}", data_dir=tmp_path)
    world: World | None = None
    try:
        world = await start_world(store, tmp_path, policy=policy)
        await world.add_user("alice")
        await world.add_app("wiki")
        yield world
    finally:
        if world is not None:
            await world.server.stop(1.0)
            await world.audit.close()
        await store.close()


@pytest.fixture
async def ldap_world(tmp_path: Path, policy: LockoutPolicy) -> AsyncIterator[World]:
    async with wiki_directory(tmp_path, policy) as world:
        yield world


def ldap_door(world: World) -> Attempt:
    wiki = world.apps["wiki"]

    async def attempt(source: str, password: str) -> tuple[int, str]:
        return await blocking(ldap_bind, wiki.server, wiki.port, source, password)

    return attempt


async def test_ldap_bind_attacker_is_busy_owner_binds(
    ldap_world: World, policy: LockoutPolicy, clock: time_machine.Coordinates
) -> None:
    await attack_and_owner(ldap_door(ldap_world), LDAP, policy, clock, LDAP_PASSWORD)


async def test_ldap_bind_same_wrong_password_is_never_busy(
    ldap_world: World, policy: LockoutPolicy
) -> None:
    await same_wrong_password(ldap_door(ldap_world), LDAP, policy, LDAP_PASSWORD)


# -- SMTP submission: AUTH PLAIN after STARTTLS on the people's port -------------------

SUBMISSION_LOGIN = f"alice@{DOMAIN}"
SMTP = Answers(
    ok=(235, b"2.7.0 Authentication successful"),
    wrong=(535, b"5.7.8 Authentication credentials invalid"),
    # The table's code (454 4.7.0); the text is smtp/auth.py's own TRY_LATER.
    later=(try_later("smtp", 1).code,
           b"4.7.0 Temporary authentication failure, try again later"),
)


def smtp_auth(port: int, source: str, password: str) -> tuple[int, bytes]:
    with smtplib.SMTP(
        "127.0.0.1", port, timeout=CLIENT_TIMEOUT, source_address=(source, 0)
    ) as client:
        client.starttls(context=insecure_client_context())
        client.ehlo()
        blob = base64.b64encode(f"\0{SUBMISSION_LOGIN}\0{password}".encode()).decode()
        return client.docmd("AUTH", f"PLAIN {blob}")


@contextlib.asynccontextmanager
async def smtp_door(tmp_path: Path, policy: LockoutPolicy) -> AsyncIterator[Attempt]:
    async with mail_world(tmp_path, policy=policy) as world:
        port = world.ports["starttls"]

        async def attempt(source: str, password: str) -> tuple[int, bytes]:
            return await blocking(smtp_auth, port, source, password)

        yield attempt


async def test_smtp_auth_attacker_gets_454_owner_authenticates(
    tmp_path: Path, policy: LockoutPolicy, clock: time_machine.Coordinates
) -> None:
    async with smtp_door(tmp_path, policy) as attempt:
        await attack_and_owner(attempt, SMTP, policy, clock, SUBMISSION_PASSWORD)


async def test_smtp_auth_same_wrong_password_is_never_454(
    tmp_path: Path, policy: LockoutPolicy
) -> None:
    async with smtp_door(tmp_path, policy) as attempt:
        await same_wrong_password(attempt, SMTP, policy, SUBMISSION_PASSWORD)


# -- IMAP and POP3: LOGIN / USER+PASS with the mailbox address -------------------------

IMAP = Answers(
    ok=("OK", b"[CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR NAMESPACE IDLE] Logged in"),
    wrong=("NO", b"[AUTHENTICATIONFAILED] Authentication failed"),
    later=("NO", try_later("imap", 1).text.encode()),
)
POP3 = Answers(
    ok=b"+OK Logged in",
    wrong=b"-ERR [AUTH] Authentication failed",
    later=f"-ERR {try_later('pop3', 1).text}".encode(),
)


def imap_login(port: int, source: str, password: str) -> tuple[str, bytes]:
    client = SourcedIMAP4("127.0.0.1", port, source)
    try:
        typ, data = client.login(ALICE, password)
        return typ, data[-1]
    except imaplib.IMAP4.error as refused:
        # imaplib raises the text after "<tag> NO" (a BAD would say "command error").
        return "NO", refused.args[0]
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            client.logout()


def pop3_login(port: int, source: str, password: str) -> bytes:
    client = SourcedPOP3("127.0.0.1", port, source)
    try:
        assert client.user(ALICE).startswith(b"+OK")
        return client.pass_(password)
    except poplib.error_proto as refused:
        line: bytes = refused.args[0]
        return line
    finally:
        with contextlib.suppress(poplib.error_proto, OSError):
            client.quit()
        client.close()


async def test_imap_login_attacker_gets_unavailable_owner_logs_in(
    tmp_path: Path, policy: LockoutPolicy, clock: time_machine.Coordinates
) -> None:
    async with mail_in_world(tmp_path, policy=policy) as world:
        port = world.ports["imap"]

        async def attempt(source: str, password: str) -> tuple[str, bytes]:
            return await blocking(imap_login, port, source, password)

        await attack_and_owner(attempt, IMAP, policy, clock, MAILBOX_PASSWORD)


async def test_pop3_login_attacker_gets_sys_temp_owner_logs_in(
    tmp_path: Path, policy: LockoutPolicy, clock: time_machine.Coordinates
) -> None:
    async with mail_in_world(tmp_path, policy=policy) as world:
        port = world.ports["pop3"]

        async def attempt(source: str, password: str) -> bytes:
            return await blocking(pop3_login, port, source, password)

        await attack_and_owner(attempt, POP3, policy, clock, MAILBOX_PASSWORD)


# -- the login wall: the form's POST /login -------------------------------------------

# (status, Retry-After): the delay after the 3rd guess is 1 s, the ban 900 s (no time
# passes while it is asked: the clock stands still).
WALL = Answers(ok=(303, None), wrong=(401, None), later=(429, "1"), banned=(429, "900"))


async def wall_login(
    wall: Wall, client: aiohttp.ClientSession, password: str
) -> tuple[int, str | None]:
    page = await client.get(wall.url("/login"), params={"redirect": "/"},
                            headers={"Host": host("whole")})
    assert page.status == 200
    flow = page.cookies[wall.flow_cookie_name].value
    answer = await client.post(
        wall.url("/login"), allow_redirects=False,
        data={"csrf": csrf_of(await page.text()), "step": "password", "redirect": "/",
              "username": "alice", "password": password},
        headers={"Host": host("whole"), "Cookie": f"{wall.flow_cookie_name}={flow}"},
    )
    body = await answer.text()
    if answer.status == 429:
        assert "Too many attempts" in body
    return answer.status, answer.headers.get("Retry-After")


async def test_login_form_attacker_gets_429_owner_signs_in(
    tmp_path: Path, policy: LockoutPolicy, clock: time_machine.Coordinates
) -> None:
    # The form's own POST rate (a token bucket) is opened wide: the 429s here are lockout's.
    async with (
        running_wall(tmp_path, policy=policy, login_rate=1000.0, login_burst=1000) as wall,
        contextlib.AsyncExitStack() as stack,
    ):
        clients = {
            source: await stack.enter_async_context(aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(local_addr=(source, 0)),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT),
            ))
            for source in (OWNER, ATTACKER, STRANGER)
        }

        async def attempt(source: str, password: str) -> tuple[int, str | None]:
            return await wall_login(wall, clients[source], password)

        await attack_and_owner(attempt, WALL, policy, clock, WALL_PASSWORD)
