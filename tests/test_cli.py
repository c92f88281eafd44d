"""The operator CLI, run as a real ``gateway`` process against a store on SQLite and PostgreSQL.

Every change the CLI makes is then checked where it matters: through the real portal
(``build_portal``) on the same store, in this process.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp
import pytest

from gateway.audit import AuditLog
from gateway.auth import (
    BadCredentials,
    Inactive,
    LoginContext,
    PasswordTOTP,
    Portal,
    TwoFactorRequired,
    UserPassword,
    build_portal,
    hasher_for,
)
from gateway.cli.check import listen_addresses
from gateway.config import AuthConfig, ListenAddress
from gateway.metrics import Metrics
from gateway.store import Store, migrations
from tests.gateway_process import isolated_servers
from tests.services import free_port

COMMAND_TIMEOUT = 60.0
# Cheap hashes: the tests exercise the flow, not argon2's cost.
FAST_HASHES = {"GATEWAY_AUTH_ARGON2_MEMORY_KIB": "1024", "GATEWAY_AUTH_ARGON2_TIME_COST": "1"}
# No verified cache in the test's portal: it must see every change the CLI process makes.
AUTH = AuthConfig(argon2_memory_kib=1024, argon2_time_cost=1, cache_ttl=0.0)
OTPAUTH = re.compile(r"otpauth://totp/\S+")
ALICE_PASSWORD = "correct horse battery"
LATEST_SCHEMA = max(version for version, _, _ in migrations.available())


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Cli:
    """``gateway`` as an operator runs it: a fresh process with its own environment."""

    cwd: Path
    env: dict[str, str] = field(default_factory=dict)

    async def __call__(self, *args: str, stdin: str | None = None, **env: str) -> Run:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=self.cwd,
            env={**self.env, **env},
        )
        try:
            out, err = await asyncio.wait_for(
                process.communicate(stdin.encode() if stdin is not None else None),
                COMMAND_TIMEOUT,
            )
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        assert process.returncode is not None
        return Run(process.returncode, out.decode(), err.decode())

    async def ok(self, *args: str, stdin: str | None = None, **env: str) -> Run:
        run = await self(*args, stdin=stdin, **env)
        assert run.code == 0, f"gateway {' '.join(args)} failed ({run.code}): {run.err}"
        return run


def base_env(**extra: str) -> dict[str, str]:
    # The developer's own GATEWAY_* settings must not reach the command under test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return {**env, **isolated_servers(), **FAST_HASHES, **extra}


@pytest.fixture
def cli(store_url: str, tmp_path: Path) -> Cli:
    data = tmp_path / "data"
    return Cli(
        tmp_path,
        base_env(
            GATEWAY_STORE_URL=store_url,
            GATEWAY_RUNTIME_DATA_DIR=str(data),
            GATEWAY_ADMIN_LISTEN=f"127.0.0.1:{free_port()}",
        ),
    )


@pytest.fixture
async def portal(store: Store) -> AsyncIterator[Portal]:
    audit = AuditLog(store.audit)
    hasher = hasher_for(AUTH)
    built = await build_portal(AUTH, store, audit=audit, metrics=Metrics(), hasher=hasher)
    try:
        yield built
    finally:
        await audit.close()
        hasher.close()


def context(second_factor: str = "skip", app_id: str | None = None) -> LoginContext:
    return LoginContext(
        door="ldap", source="127.0.0.1", app_id=app_id,
        second_factor=second_factor,  # type: ignore[arg-type]
    )


async def login(portal: Portal, password: str, login_name: str = "alice", **kw: Any) -> str:
    identity = await portal.login(UserPassword(login_name, password, context(), **kw))
    return identity.user_id  # type: ignore[union-attr]


async def add_alice(cli: Cli, *extra: str) -> Run:
    return await cli.ok(
        "user", "add", "alice", "--email", "alice@example.com", "--display-name",
        "Alice Liddell", "--password-stdin", *extra, stdin=ALICE_PASSWORD + "\n",
    )


# -- users --------------------------------------------------------------------------------


async def test_user_add_list_show(cli: Cli, store: Store) -> None:
    added = await add_alice(cli)
    assert "added alice" in added.out
    bob = (
        await cli.ok(
            "user", "add", "bob", "--email", "Bob@Example.com", "--role", "admin",
            "--password-stdin", "--json", stdin="bobs password\n",
        )
    ).json()
    assert bob["username"] == "bob"
    assert bob["email"] == "bob@example.com"
    assert bob["role"] == "admin"
    assert bob["id"].startswith("uid-")

    table = (await cli.ok("user", "list")).out.splitlines()
    assert table[0].split() == ["USERNAME", "EMAIL", "ROLE", "ACTIVE", "2FA", "GROUPS", "ID"]
    assert table[1].split()[:5] == ["alice", "alice@example.com", "user", "yes", "no"]
    assert table[2].split()[:4] == ["bob", "bob@example.com", "admin", "yes"]
    # Columns line up: every row's email starts where the header's does.
    assert table[1].index("alice@") == table[2].index("bob@") == table[0].index("EMAIL")

    listed = (await cli.ok("user", "list", "--json")).json()
    assert [u["username"] for u in listed] == ["alice", "bob"]
    expected_keys = {
        "id", "username", "email", "fallback_email", "display_name", "role", "active",
        "totp_enabled", "ldap_totp", "groups", "created_at", "modified_at",
    }
    assert set(listed[0]) == expected_keys
    assert "password_hash" not in json.dumps(listed)

    shown = (await cli.ok("user", "show", "alice@example.com", "--json")).json()
    assert set(shown) == expected_keys | {"app_passwords"}
    assert shown["display_name"] == "Alice Liddell"
    assert shown["app_passwords"] == 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", shown["created_at"])
    by_id = (await cli.ok("user", "show", shown["id"])).out
    assert re.search(r"^username:\s+alice$", by_id, re.M)
    assert re.search(r"^2fa:\s+off$", by_id, re.M)
    assert re.search(r"^active:\s+yes$", by_id, re.M)

    # What the CLI wrote is what the store holds, hashed with argon2id.
    stored = await store.users.resolve("alice")
    assert stored.password_hash.startswith("$argon2id$")
    assert ALICE_PASSWORD not in stored.password_hash


async def test_passwd_disable_enable_through_the_portal(
    cli: Cli, store: Store, portal: Portal
) -> None:
    await add_alice(cli)
    alice = await store.users.resolve("alice")
    assert await login(portal, ALICE_PASSWORD) == alice.id
    soon = time.time() + 60
    await store.sessions.put("wall-cookie", user_id=alice.id, app_id=None, expires_at=soon)

    changed = await cli.ok(
        "user", "passwd", "alice", "--password-stdin", "--json", stdin="a brand new secret\n"
    )
    assert changed.json()["sessions_ended"] == 1
    assert await store.sessions.get("wall-cookie") is None
    assert await login(portal, "a brand new secret") == alice.id
    with pytest.raises(BadCredentials):
        await login(portal, ALICE_PASSWORD)

    await store.sessions.put("again", user_id=alice.id, app_id=None, expires_at=soon)
    disabled = await cli.ok("user", "disable", "alice")
    assert "disabled" in disabled.out
    assert await store.sessions.get("again") is None
    with pytest.raises(Inactive):
        await login(portal, "a brand new secret")
    assert (await cli.ok("user", "show", "alice", "--json")).json()["active"] is False

    await cli.ok("user", "enable", "alice")
    assert await login(portal, "a brand new secret") == alice.id

    events = await store.audit.recent(user_id=alice.id, door="cli")
    assert [e.action for e in events] == [
        "user.add", "user.password", "user.disable", "user.enable",
    ]
    assert all("secret" not in (e.reason or "") for e in events)


async def test_password_never_comes_from_argv(cli: Cli) -> None:
    run = await cli(
        "user", "add", "carol", "--email", "carol@example.com", "--password", "hunter2hunter2"
    )
    assert run.code == 2
    assert "unrecognized arguments" in run.err
    help_text = (await cli.ok("user", "add", "--help")).out
    assert "--password-stdin" in help_text
    assert not re.search(r"--password(?!-stdin)", help_text)

    # Without --password-stdin and without a terminal there is no way to ask: refuse.
    run = await cli("user", "add", "carol", "--email", "carol@example.com")
    assert run.code == 2
    assert "--password-stdin" in run.err
    run = await cli("user", "list", "--json")
    assert run.json() == []


async def test_password_length_is_enforced(cli: Cli) -> None:
    run = await cli(
        "user", "add", "carol", "--email", "carol@example.com", "--password-stdin",
        stdin="short\n",
    )
    assert run.code == 1
    assert "password" in run.err
    assert "8 to 256" in run.err
    run = await cli(
        "user", "add", "carol", "--email", "carol@example.com", "--password-stdin",
        stdin="x" * 257 + "\n",
    )
    assert run.code == 1


async def test_refusals_exit_1_with_the_store_message(cli: Cli) -> None:
    await add_alice(cli)
    missing = await cli("user", "show", "nobody")
    assert (missing.code, missing.err.strip()) == (1, "gateway: no user 'nobody'")
    as_json = await cli("user", "show", "nobody", "--json")
    assert as_json.code == 1
    assert json.loads(as_json.err) == {"error": "no user 'nobody'", "kind": "not_found"}
    taken = await cli(
        "user", "add", "alice", "--email", "other@example.com", "--password-stdin",
        stdin="long enough password\n",
    )
    assert taken.code == 1
    assert "taken" in taken.err
    bad = await cli(
        "user", "add", "Not Valid!", "--email", "x@example.com", "--password-stdin",
        stdin="long enough password\n",
    )
    assert bad.code == 1
    assert "username" in bad.err


async def test_user_remove_needs_confirmation(cli: Cli, store: Store, portal: Portal) -> None:
    await add_alice(cli)
    refused = await cli("user", "remove", "alice")
    assert refused.code == 2
    assert "--yes" in refused.err
    assert await store.users.find("alice") is not None

    removed = await cli.ok("user", "remove", "alice", "--yes", "--json")
    assert removed.json()["removed"] is True
    assert await store.users.find("alice") is None
    assert (await cli("user", "show", "alice")).code == 1


async def test_the_last_owner_cannot_be_disabled_or_removed(cli: Cli) -> None:
    await add_alice(cli, "--role", "owner")
    for command in (("disable", "alice"), ("remove", "alice", "--yes")):
        run = await cli("user", *command)
        assert run.code == 1
        assert "last active owner" in run.err
    await cli.ok(
        "user", "add", "bob", "--email", "bob@example.com", "--role", "owner",
        "--password-stdin", stdin="bobs password\n",
    )
    await cli.ok("user", "disable", "alice")


# -- second factor -----------------------------------------------------------------------


async def test_two_factor_enrolment_logs_in_with_a_code(
    cli: Cli, store: Store, portal: Portal
) -> None:
    await add_alice(cli)
    enrolled = await cli.ok("user", "2fa", "enable", "alice")
    match = OTPAUTH.search(enrolled.out)
    assert match, enrolled.out
    uri = match.group(0)
    parsed = pyotp.parse_uri(uri)
    assert parsed.issuer == "Gateway"
    # A QR code: many rows of half blocks (or ANSI colours where the terminal lacks them).
    qr_rows = [line for line in enrolled.out.splitlines() if "█" in line or "\x1b[" in line]
    assert len(qr_rows) > 10
    secret = parsed.secret

    totp = pyotp.TOTP(secret)
    identity = await portal.login(
        PasswordTOTP("alice", ALICE_PASSWORD, totp.now(), context("enforce"))
    )
    assert identity.method == "password+totp"  # type: ignore[union-attr]
    with pytest.raises(TwoFactorRequired):
        await portal.login(UserPassword("alice", ALICE_PASSWORD, context("enforce")))

    # Enrolling twice would silently break the authenticator the user already has.
    again = await cli("user", "2fa", "enable", "alice")
    assert again.code == 1
    assert "already on" in again.err

    # LDAP opt-in: the code (of the next step: this one is used) goes after the password.
    assert (await cli.ok("user", "ldap-2fa", "on", "alice", "--json")).json()["ldap_totp"]
    next_code = totp.at(time.time() + 30)
    ldap_ctx = context("ldap_opt_in")
    await portal.login(UserPassword("alice", ALICE_PASSWORD + next_code, ldap_ctx))
    with pytest.raises(BadCredentials):
        await portal.login(UserPassword("alice", ALICE_PASSWORD, ldap_ctx))
    await cli.ok("user", "ldap-2fa", "off", "alice")
    assert (await store.users.resolve("alice")).ldap_totp is False

    await cli.ok("user", "2fa", "disable", "alice")
    await portal.login(UserPassword("alice", ALICE_PASSWORD, context("enforce")))

    fresh = (await cli.ok("user", "2fa", "enable", "alice", "--json")).json()
    assert set(fresh) == {"id", "uri", "secret"}
    assert pyotp.parse_uri(fresh["uri"]).secret == fresh["secret"] != secret
    assert (await cli.ok("user", "show", "alice", "--json")).json()["totp_enabled"] is True


# -- app passwords -----------------------------------------------------------------------


async def test_app_password_opens_only_its_identifier(
    cli: Cli, store: Store, portal: Portal
) -> None:
    await add_alice(cli)
    app = await store.apps.add(location="wiki", domain="example.com", manifest={})
    unknown = await cli("user", "app-password", "add", "alice", "--name", "x", "--for", "nope")
    assert unknown.code == 1
    assert "no app 'nope'" in unknown.err

    issued = await cli.ok(
        "user", "app-password", "add", "alice", "--name", "wiki sync", "--for", app.id
    )
    password = re.search(r"^ {4}(\S+)$", issued.out, re.M)
    assert password, issued.out
    secret = password.group(1)
    assert len(secret) == 24
    assert issued.out.count(secret) == 1

    for_app = {"app_passwords_for": app.id}
    await portal.login(UserPassword("alice", secret, context(app_id=app.id), **for_app))
    with pytest.raises(BadCredentials):
        await portal.login(UserPassword("alice", secret, context(), app_passwords_for="mail"))
    with pytest.raises(BadCredentials):
        await portal.login(UserPassword("alice", secret, context("enforce")))

    mail = (
        await cli.ok("user", "app-password", "add", "alice", "--name", "phone", "--for", "mail",
                     "--json")
    ).json()
    assert set(mail) == {"id", "user_id", "name", "identifier", "created_at", "password"}
    await portal.login(UserPassword("alice", mail["password"], context(), app_passwords_for="mail"))

    listing = await cli.ok("user", "app-password", "list", "alice")
    assert secret not in listing.out
    assert mail["password"] not in listing.out
    assert "wiki sync" in listing.out
    listed = (await cli.ok("user", "app-password", "list", "alice", "--json")).json()
    assert [(p["name"], p["identifier"]) for p in listed] == [
        ("wiki sync", app.id), ("phone", "mail"),
    ]
    assert all("password" not in p for p in listed)
    assert (await cli.ok("user", "show", "alice", "--json")).json()["app_passwords"] == 2

    wiki_id = listed[0]["id"]
    await cli.ok("user", "app-password", "revoke", "alice", wiki_id)
    with pytest.raises(BadCredentials):
        await portal.login(UserPassword("alice", secret, context(app_id=app.id), **for_app))
    again = await cli("user", "app-password", "revoke", "alice", wiki_id)
    assert again.code == 1
    # The other one still works.
    await portal.login(UserPassword("alice", mail["password"], context(), app_passwords_for="mail"))


# -- groups ------------------------------------------------------------------------------


async def test_groups_and_members(cli: Cli, store: Store) -> None:
    await add_alice(cli)
    await cli.ok(
        "user", "add", "bob", "--email", "bob@example.com", "--password-stdin",
        stdin="bobs password\n",
    )
    added = (await cli.ok("group", "add", "Developers", "--json")).json()
    assert added["name"] == "developers"
    await cli.ok("group", "add", "ops")
    assert (await cli("group", "add", "ops")).code == 1
    assert (await cli("group", "add", "admins")).code == 1

    members = await cli.ok("group", "members", "developers", "--add", "alice", "--add", "bob")
    assert [line.split()[0] for line in members.out.splitlines()] == ["USERNAME", "alice", "bob"]
    await cli.ok("group", "members", "ops", "--add", "bob@example.com")

    listed = (await cli.ok("group", "list", "--json")).json()
    assert [(g["name"], g["members"]) for g in listed] == [("developers", 2), ("ops", 1)]
    table = (await cli.ok("group", "list")).out.splitlines()
    assert table[1].split()[:2] == ["developers", "2"]
    shown = (await cli.ok("user", "show", "bob", "--json")).json()
    assert shown["groups"] == ["developers", "ops"]

    after = (await cli.ok("group", "members", "developers", "--remove", "alice", "--json")).json()
    assert [m["username"] for m in after["members"]] == ["bob"]
    typo = await cli("group", "members", "developers", "--add", "nobody")
    assert typo.code == 1

    await cli.ok("group", "remove", "developers")
    assert [g.name for g in await store.groups.list()] == ["ops"]
    assert (await cli("group", "remove", "developers")).code == 1


# -- config and check --------------------------------------------------------------------


async def test_bad_config_value_exits_2_naming_the_key(tmp_path: Path) -> None:
    cli = Cli(tmp_path, base_env(GATEWAY_AUTH_ARGON2_MEMORY_KIB="12"))
    run = await cli("user", "list")
    assert run.code == 2
    assert "auth.argon2_memory_kib" in run.err

    config = tmp_path / "gateway.toml"
    config.write_text('[store]\nurl = "sqlite:///x.db"\npool_sise = 3\n')
    run = await Cli(tmp_path, base_env())("--config", str(config), "check")
    assert run.code == 2
    assert str(config) in run.err
    assert "store.pool_sise" in run.err

    run = await Cli(tmp_path, base_env(GATEWAY_STORE_URL="mysql://db/gateway"))("user", "list")
    assert run.code == 2
    assert "store.url" in run.err


async def test_check_a_good_setup(cli: Cli, store: Store, tmp_path: Path) -> None:
    run = await cli.ok("check")
    assert re.search(r"^ok\s+config\s+loaded from <defaults>", run.out, re.M)
    latest = LATEST_SCHEMA
    assert re.search(rf"^ok\s+store\s+{store.dialect}, schema {latest}, up to date", run.out, re.M)
    assert re.search(r"^ok\s+listen\s+admin\.listen 127\.0\.0\.1:\d+ is free", run.out, re.M)
    assert run.err == ""

    report = (await cli.ok("check", "--json")).json()
    assert report["ok"] is True
    assert report["problems"] == []
    assert report["store"]["engine"] == store.dialect
    assert report["store"]["schema_version"] == LATEST_SCHEMA
    assert report["store"]["pending_migrations"] == []
    assert report["data_dir"]["writable"] is True
    assert [entry["key"] for entry in report["listen"]] == ["admin.listen"]


async def test_check_reports_a_fresh_store_without_creating_it(
    cli: Cli, store_url: str, tmp_path: Path
) -> None:
    report = (await cli.ok("check", "--json")).json()
    assert report["store"]["schema_version"] == 0
    assert report["store"]["pending_migrations"] == [v for v, _, _ in migrations.available()]
    if store_url.startswith("sqlite"):
        assert not (tmp_path / "store.db").exists()


async def test_check_finds_a_busy_port(cli: Cli, store: Store) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = await cli("check", GATEWAY_ADMIN_LISTEN=f"127.0.0.1:{port}")
        assert run.code == 1
        assert run.err.strip().splitlines() == [
            f"problem  listen    admin.listen 127.0.0.1:{port}: in use by another process"
        ]
        report = json.loads(
            (await cli("check", "--json", GATEWAY_ADMIN_LISTEN=f"127.0.0.1:{port}")).out
        )
        assert report["ok"] is False
        assert report["listen"][0]["free"] is False
        # A disabled server's port is nobody's business.
        quiet = await cli.ok(
            "check", GATEWAY_ADMIN_LISTEN=f"127.0.0.1:{port}", GATEWAY_ADMIN_ENABLED="false"
        )
        assert "admin.listen" not in quiet.out


async def test_check_finds_an_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    cli = Cli(
        tmp_path,
        base_env(
            GATEWAY_RUNTIME_DATA_DIR=str(blocker / "data"),
            GATEWAY_ADMIN_ENABLED="false",
        ),
    )
    run = await cli("check")
    assert run.code == 1
    assert "runtime.data_dir" in run.err
    assert "not a directory" in run.err
    assert len(run.err.strip().splitlines()) == 1


async def test_an_unreachable_store_is_a_refusal(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/gateway"
    cli = Cli(tmp_path, base_env(GATEWAY_STORE_URL=url, GATEWAY_ADMIN_ENABLED="false"))
    listed = await cli("user", "list")
    assert listed.code == 1
    assert "cannot open the store" in listed.err
    checked = await cli("check")
    assert checked.code == 1
    assert "problem  store" in checked.err


# -- listen addresses are found by walking the schema ------------------------------------


@dataclass(frozen=True)
class _Inner:
    enabled: bool = True
    listen: ListenAddress = field(default_factory=lambda: ListenAddress("127.0.0.1", 25))


@dataclass(frozen=True)
class _Section:
    enabled: bool = True
    listen: list[ListenAddress] = field(
        default_factory=lambda: [ListenAddress("::1", 389), ListenAddress("127.0.0.1", 0)]
    )
    submission: _Inner = field(default_factory=_Inner)
    off: _Inner = field(default_factory=lambda: _Inner(enabled=False))


@dataclass(frozen=True)
class _Root:
    mail: _Section = field(default_factory=_Section)
    quiet: _Section = field(default_factory=lambda: _Section(enabled=False))


def test_listen_addresses_walks_enabled_sections_only() -> None:
    assert list(listen_addresses(_Root())) == [
        ("mail.listen[0]", ListenAddress("::1", 389)),
        ("mail.listen[1]", ListenAddress("127.0.0.1", 0)),
        ("mail.submission.listen", ListenAddress("127.0.0.1", 25)),
    ]


# -- the interactive prompt, on a real terminal ------------------------------------------


class Terminal:
    """A command on a pseudo-terminal of its own, as an operator at a shell runs it.

    getpass flushes pending input when it turns echo off, so each answer is typed only
    once its prompt has appeared.
    """

    def __init__(self, cwd: Path, env: dict[str, str], *args: str) -> None:
        import pty
        import subprocess

        self._master, slave = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", *args],
            stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env,
            start_new_session=True, preexec_fn=_take_terminal,
        )
        os.close(slave)
        self.seen = ""

    def expect(self, text: str, timeout: float = COMMAND_TIMEOUT) -> None:
        import select

        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"no {text!r} in {self.seen!r}"
            ready, _, _ = select.select([self._master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self._master, 4096)
                except OSError:  # EIO: the command exited and closed the terminal
                    chunk = b""
                assert chunk, f"command ended without {text!r}: {self.seen!r}"
                self.seen += chunk.decode(errors="replace")

    def type(self, line: str) -> None:
        os.write(self._master, line.encode() + b"\n")

    def finish(self) -> int:
        """Wait for the exit, then keep what it wrote last (until the terminal closes)."""
        import select

        try:
            code = self.process.wait(timeout=COMMAND_TIMEOUT)
            for _ in range(1000):
                ready, _, _ = select.select([self._master], [], [], 1.0)
                if not ready:
                    break
                try:
                    chunk = os.read(self._master, 4096)
                except OSError:  # EIO: everything was read
                    break
                if not chunk:
                    break
                self.seen += chunk.decode(errors="replace")
            return code
        finally:
            os.close(self._master)


def _take_terminal() -> None:
    import fcntl
    import termios

    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


async def test_interactive_prompts(cli: Cli, store: Store, portal: Portal) -> None:
    await add_alice(cli)

    def change_password(first: str, second: str) -> tuple[int, str]:
        term = Terminal(cli.cwd, cli.env, "user", "passwd", "alice")
        term.expect("New password: ")
        term.type(first)
        term.expect("Repeat it: ")
        term.type(second)
        code = term.finish()
        return code, term.seen

    loop = asyncio.get_running_loop()
    code, seen = await loop.run_in_executor(None, change_password, "typed twice", "typed twce")
    assert code == 1
    assert "differ" in seen
    assert "typed" not in seen  # no echo
    code, seen = await loop.run_in_executor(None, change_password, "typed twice", "typed twice")
    assert code == 0, seen
    assert await login(portal, "typed twice")

    def remove(answer: str) -> int:
        term = Terminal(cli.cwd, cli.env, "user", "remove", "alice")
        term.expect("[y/N]")
        term.type(answer)
        return term.finish()

    assert await loop.run_in_executor(None, remove, "n") == 1
    assert await store.users.find("alice") is not None
    assert await loop.run_in_executor(None, remove, "y") == 0
    assert await store.users.find("alice") is None
