"""The one credential check, on SQLite and on PostgreSQL alike (``store`` is parametrized).

Every outcome a door can meet, what the rate-limit policy is asked and told, what the audit
trail keeps (and never keeps), and the verified cache: skipped hashing, dropped at once by
every kind of change that could make a cached answer wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyotp
import pytest
import time_machine

from gateway.audit import AuditLog
from gateway.auth import (
    AppIdentity,
    AppPassword,
    AppSecret,
    BadCredentials,
    Inactive,
    Locked,
    LoginContext,
    LoginFailed,
    NoAccess,
    PasswordHasher,
    PasswordTOTP,
    Portal,
    RateLimited,
    TwoFactorRequired,
    UnknownAccount,
    UserIdentity,
    UserPassword,
    build_portal,
)
from gateway.auth.cache import VerifiedCache
from gateway.auth.credentials import Credentials, Door, SecondFactor
from gateway.auth.hashing import HashParams, cloudron_hash, from_cloudron
from gateway.config import AuthConfig
from gateway.metrics import Metrics
from gateway.store import Change, Store
from gateway.store.models import AccessRestriction, App, AuditEvent, Group, User
from ratelimit import Allow, Attempt, Banned, Decision, Delay, Outcome

# Cheap argon2id, so a test proves behaviour without spending seconds hashing.
FAST = AuthConfig(argon2_memory_kib=1024, argon2_time_cost=1)
PASSWORD = "correct-horse-battery-7f3a"
WRONG = "wrong-horse-battery-9c1d"
SOURCE = "192.0.2.10"
# A whole TOTP step starts at this instant (1_700_000_010 = 56_666_667 * 30).
STEP_START = 1_700_000_010


class CountingHasher(PasswordHasher):
    """The real hasher, counting its calls: proves when password work did (not) happen."""

    def __init__(self, params: HashParams) -> None:
        super().__init__(params, workers=2)
        self.verifies = 0
        self.decoys = 0
        self.hashes = 0
        # When set, a verify finishes only once the gate opens: holds a login in flight.
        self.gate: asyncio.Event | None = None
        self._counted = asyncio.Condition()

    async def verify(self, password: str, stored: str | None) -> bool:
        self.verifies += 1
        async with self._counted:
            self._counted.notify_all()
        if stored is None:
            self.decoys += 1
        verified = await super().verify(password, stored)
        if self.gate is not None:
            await asyncio.wait_for(self.gate.wait(), 10)
        return verified

    async def wait_for_verifies(self, count: int, timeout: float = 10) -> None:
        async with self._counted:
            await asyncio.wait_for(self._counted.wait_for(lambda: self.verifies >= count), timeout)

    async def hash(self, password: str) -> str:
        self.hashes += 1
        return await super().hash(password)


@dataclass
class RecordingPolicy:
    """A rate-limit policy that answers ``decision`` and remembers what it was asked and told."""

    decision: Decision = field(default_factory=Allow)
    hasher: CountingHasher | None = None
    checks: list[Attempt] = field(default_factory=list)
    records: list[tuple[Attempt, Outcome]] = field(default_factory=list)
    verifies_at_check: list[int] = field(default_factory=list)

    async def check(self, attempt: Attempt) -> Decision:
        self.checks.append(attempt)
        if self.hasher is not None:
            self.verifies_at_check.append(self.hasher.verifies)
        return self.decision

    async def record(self, attempt: Attempt, outcome: Outcome) -> None:
        self.records.append((attempt, outcome))

    @property
    def outcomes(self) -> list[Outcome]:
        return [outcome for _, outcome in self.records]


@dataclass
class Rig:
    store: Store
    portal: Portal
    hasher: CountingHasher
    policy: RecordingPolicy
    audit: AuditLog

    async def add_user(
        self, name: str, password: str = PASSWORD, **extra: object
    ) -> User:
        return await self.store.users.add(
            username=name, email=f"{name}@example.com",
            password_hash=self.hasher.hash_now(password), **extra,  # type: ignore[arg-type]
        )

    async def add_app(self, access: AccessRestriction | None = None, location: str = "wiki") -> App:
        return await self.store.apps.add(
            location=location, domain="example.com", manifest={"title": location}, access=access
        )

    async def app_password(self, user: User, identifier: str) -> tuple[str, str]:
        """A new app password of ``user``: (its id, the password shown once)."""
        password = secrets.token_hex(8)
        record = await self.store.app_passwords.add(
            user.id, "phone", identifier, self.hasher.hash_now(password)
        )
        return record.id, password

    async def login(
        self,
        login: str,
        password: str = PASSWORD,
        *,
        door: Door = "ldap",
        app_id: str | None = None,
        second_factor: SecondFactor = "skip",
        app_passwords_for: str | None = None,
    ) -> UserIdentity:
        identity = await self.portal.login(
            UserPassword(
                login, password, LoginContext(door, SOURCE, app_id, second_factor),
                app_passwords_for=app_passwords_for,
            )
        )
        assert isinstance(identity, UserIdentity)
        return identity

    async def events(self) -> list[AuditEvent]:
        await self.audit.flush()
        return await self.store.audit.recent(limit=1000)


@pytest.fixture
async def rig(store: Store) -> AsyncIterator[Rig]:
    hasher = CountingHasher(
        HashParams(FAST.argon2_time_cost, FAST.argon2_memory_kib, FAST.argon2_parallelism)
    )
    policy = RecordingPolicy(hasher=hasher)
    # A long interval: the tests flush when they want to read the trail.
    audit = AuditLog(store.audit, interval=3600)
    portal = await build_portal(
        FAST, store, audit=audit, metrics=Metrics(), policy=policy, hasher=hasher
    )
    try:
        yield Rig(store, portal, hasher, policy, audit)
    finally:
        await audit.close()
        hasher.close()


# -- who the login names, and whether the secret is right ----------------------------------


async def test_unknown_user_is_unknown_and_costs_a_verify(rig: Rig) -> None:
    await rig.add_user("alice")
    with pytest.raises(UnknownAccount):
        await rig.login("nobody")
    # The decoy hash was verified, so "no such user" costs what "wrong password" costs.
    assert (rig.hasher.verifies, rig.hasher.decoys) == (1, 1)
    with pytest.raises(BadCredentials):
        await rig.login("alice", WRONG)
    assert (rig.hasher.verifies, rig.hasher.decoys) == (2, 1)


async def test_user_without_username_is_unknown(rig: Rig) -> None:
    # An invited user who never chose a username cannot log in yet.
    await rig.store.users.add(
        username=None, email="invited@example.com", password_hash=rig.hasher.hash_now(PASSWORD)
    )
    with pytest.raises(UnknownAccount):
        await rig.login("invited@example.com")
    assert rig.hasher.decoys == 1


async def test_wrong_password_is_bad_credentials(rig: Rig) -> None:
    await rig.add_user("alice")
    with pytest.raises(BadCredentials):
        await rig.login("alice", WRONG)
    with pytest.raises(BadCredentials):
        await rig.login("alice", "")


@pytest.mark.parametrize(
    "login",
    [
        lambda u: u.username,
        lambda u: u.username.upper(),
        lambda u: u.email,
        lambda u: u.email.upper(),
        lambda u: "  " + u.email.title() + " ",
        lambda u: u.id,
    ],
    ids=["username", "USERNAME", "email", "EMAIL", "Email-padded", "user-id"],
)
async def test_right_password_by_any_name(rig: Rig, login: Callable[[User], str]) -> None:
    user = await rig.add_user("alice", display_name="Alice Example")
    identity = await rig.login(login(user))
    assert identity.user_id == user.id
    assert identity.username == "alice"
    assert identity.email == "alice@example.com"
    assert identity.display_name == "Alice Example"
    assert identity.method == "password"


async def test_inactive_only_after_the_right_password(rig: Rig) -> None:
    await rig.add_user("alice", active=False)
    # A wrong guess learns nothing about the account's state.
    with pytest.raises(BadCredentials):
        await rig.login("alice", WRONG)
    with pytest.raises(Inactive):
        await rig.login("alice")


async def test_a_deactivated_user_with_2fa_is_not_asked_for_a_code(rig: Rig) -> None:
    user = await rig.add_user("alice", active=False)
    await rig.store.users.set_totp(user.id, pyotp.random_base32(32), True)
    with pytest.raises(Inactive):
        await rig.login("alice", door="proxyauth", second_factor="enforce")


# -- access restriction (Cloudron E.6) -------------------------------------------------------


@dataclass(frozen=True)
class AccessCase:
    role: str
    restriction: Callable[[User, Group, Group], AccessRestriction | None]
    allowed: bool


ACCESS_CASES = {
    "null-is-everyone": AccessCase("user", lambda u, mine, other: None, True),
    "listed-user": AccessCase(
        "user", lambda u, mine, other: AccessRestriction(users=(u.id,)), True
    ),
    "someone-else-listed": AccessCase(
        "user", lambda u, mine, other: AccessRestriction(users=("uid-someone-else",)), False
    ),
    "my-group-listed": AccessCase(
        "user", lambda u, mine, other: AccessRestriction(groups=(mine.id,)), True
    ),
    "other-group-listed": AccessCase(
        "user", lambda u, mine, other: AccessRestriction(groups=(other.id,)), False
    ),
    "admins-only-user": AccessCase("user", lambda u, mine, other: AccessRestriction(), False),
    "admins-only-usermanager": AccessCase(
        "usermanager", lambda u, mine, other: AccessRestriction(), False
    ),
    "admins-only-admin": AccessCase("admin", lambda u, mine, other: AccessRestriction(), True),
    "admins-only-owner": AccessCase("owner", lambda u, mine, other: AccessRestriction(), True),
    "admin-not-listed": AccessCase(
        "admin", lambda u, mine, other: AccessRestriction(groups=(other.id,)), True
    ),
}


@pytest.mark.parametrize("case", ACCESS_CASES.values(), ids=ACCESS_CASES.keys())
async def test_access_restriction(rig: Rig, case: AccessCase) -> None:
    user = await rig.add_user("alice", role=case.role)
    mine, other = await rig.store.groups.add("staff"), await rig.store.groups.add("guests")
    await rig.store.groups.add_member(mine.id, user.id)
    app = await rig.add_app(case.restriction(user, mine, other))
    if case.allowed:
        identity = await rig.login("alice", app_id=app.id)
        assert identity.group_names == ("staff",)
    else:
        with pytest.raises(NoAccess):
            await rig.login("alice", app_id=app.id)
    # A wrong password is a wrong password, whatever the access: nothing leaks.
    with pytest.raises(BadCredentials):
        await rig.login("alice", WRONG, app_id=app.id)


async def test_unknown_app_is_no_access(rig: Rig) -> None:
    await rig.add_user("alice")
    with pytest.raises(NoAccess):
        await rig.login("alice", app_id="no-such-app")


# -- app passwords (Cloudron E.5) ------------------------------------------------------------


async def test_app_password_works_only_for_its_identifier(rig: Rig) -> None:
    user = await rig.add_user("alice")
    wiki, chat = await rig.add_app(location="wiki"), await rig.add_app(location="chat")
    _, for_wiki = await rig.app_password(user, wiki.id)
    _, for_mail = await rig.app_password(user, "mail")

    identity = await rig.login("alice", for_wiki, app_id=wiki.id, app_passwords_for=wiki.id)
    assert identity.method == "app_password"
    identity = await rig.login("alice", for_mail, door="imap", app_passwords_for="mail")
    assert identity.method == "app_password"
    # The main password still works where app passwords are accepted.
    identity = await rig.login("alice", app_id=wiki.id, app_passwords_for=wiki.id)
    assert identity.method == "password"

    with pytest.raises(BadCredentials):
        await rig.login("alice", for_wiki, app_id=chat.id, app_passwords_for=chat.id)
    with pytest.raises(BadCredentials):
        await rig.login("alice", for_mail, app_id=wiki.id, app_passwords_for=wiki.id)
    with pytest.raises(BadCredentials):
        await rig.login("alice", for_wiki, door="smtp", app_passwords_for="mail")


async def test_app_password_never_works_on_the_login_form(rig: Rig) -> None:
    user = await rig.add_user("alice")
    wiki = await rig.add_app()
    _, for_wiki = await rig.app_password(user, wiki.id)
    with pytest.raises(BadCredentials):
        await rig.login(
            "alice", for_wiki, door="proxyauth", app_id=wiki.id, second_factor="enforce"
        )
    with pytest.raises(BadCredentials):
        await rig.login("alice", for_wiki, door="ldap", app_id=wiki.id)


async def test_app_password_credentials(rig: Rig) -> None:
    user = await rig.add_user("alice")
    _, for_mail = await rig.app_password(user, "mail")
    context = LoginContext("imap", SOURCE)
    identity = await rig.portal.login(AppPassword("alice", for_mail, "mail", context))
    assert isinstance(identity, UserIdentity)
    assert identity.method == "app_password"
    with pytest.raises(BadCredentials):
        # The main password is not an app password.
        await rig.portal.login(AppPassword("alice", PASSWORD, "mail", context))
    with pytest.raises(BadCredentials):
        await rig.portal.login(AppPassword("alice", for_mail, "some-app", context))


async def test_app_password_satisfies_login_without_totp(rig: Rig) -> None:
    user = await rig.add_user("alice")
    await rig.store.users.set_totp(user.id, pyotp.random_base32(32), True)
    await rig.store.users.update(user.id, ldap_totp=True)
    wiki = await rig.add_app()
    _, for_wiki = await rig.app_password(user, wiki.id)
    identity = await rig.login(
        "alice", for_wiki, app_id=wiki.id, app_passwords_for=wiki.id,
        second_factor="ldap_opt_in",
    )
    assert identity.method == "app_password"


# -- TOTP (RFC 6238, no replay) ---------------------------------------------------------------


@pytest.fixture
def frozen_step() -> Iterator[int]:
    """Time starts 2 s into a TOTP step, so a test's codes stay in their step."""
    with time_machine.travel(datetime.fromtimestamp(STEP_START + 2, UTC), tick=True):
        yield STEP_START // 30


async def totp_user(rig: Rig, *, ldap_totp: bool = False) -> tuple[User, pyotp.TOTP]:
    user = await rig.add_user("alice")
    secret = pyotp.random_base32(32)
    await rig.store.users.set_totp(user.id, secret, True)
    if ldap_totp:
        await rig.store.users.update(user.id, ldap_totp=True)
    return user, pyotp.TOTP(secret)


def form(code: str, password: str = PASSWORD, door: Door = "proxyauth") -> PasswordTOTP:
    return PasswordTOTP("alice", password, code, LoginContext(door, SOURCE, None, "enforce"))


async def test_totp_enforced_asks_for_the_code(rig: Rig, frozen_step: int) -> None:
    await totp_user(rig)
    with pytest.raises(TwoFactorRequired):
        await rig.login("alice", door="proxyauth", second_factor="enforce")
    with pytest.raises(BadCredentials):
        await rig.login("alice", WRONG, door="proxyauth", second_factor="enforce")


async def test_totp_right_wrong_and_replayed(rig: Rig, frozen_step: int) -> None:
    _, totp = await totp_user(rig)
    now = totp.generate_otp(frozen_step)
    valid = {totp.generate_otp(frozen_step + d) for d in (-1, 0, 1)}
    wrong = next(c for c in ("000000", "111111", "222222") if c not in valid)

    with pytest.raises(BadCredentials):
        await rig.portal.login(form(wrong))
    with pytest.raises(BadCredentials):
        await rig.portal.login(form(now, WRONG))
    identity = await rig.portal.login(form(now))
    assert isinstance(identity, UserIdentity)
    assert identity.method == "password+totp"
    with pytest.raises(BadCredentials):
        await rig.portal.login(form(now))


async def test_totp_older_step_after_newer_fails(rig: Rig, frozen_step: int) -> None:
    _, totp = await totp_user(rig)
    await rig.portal.login(form(totp.generate_otp(frozen_step)))
    # Inside the window, but older than the step already used.
    with pytest.raises(BadCredentials):
        await rig.portal.login(form(totp.generate_otp(frozen_step - 1)))
    identity = await rig.portal.login(form(totp.generate_otp(frozen_step + 1)))
    assert identity.method == "password+totp"  # type: ignore[union-attr]


async def test_totp_replay_across_doors(rig: Rig, frozen_step: int) -> None:
    _, totp = await totp_user(rig, ldap_totp=True)
    code = totp.generate_otp(frozen_step)
    await rig.portal.login(form(code, door="proxyauth"))
    with pytest.raises(BadCredentials):
        await rig.login("alice", PASSWORD + code, door="ldap", second_factor="ldap_opt_in")
    # And the other way round: a code used over LDAP is spent for the login form too.
    later = totp.generate_otp(frozen_step + 1)
    identity = await rig.login("alice", PASSWORD + later, second_factor="ldap_opt_in")
    assert identity.method == "password+totp"
    with pytest.raises(BadCredentials):
        await rig.portal.login(form(later, door="proxyauth"))


async def test_ldap_totp_appended_only_when_opted_in(rig: Rig, frozen_step: int) -> None:
    user, totp = await totp_user(rig, ldap_totp=False)
    code = totp.generate_otp(frozen_step)
    # Not opted in: the password alone binds, and a code appended makes it wrong.
    with pytest.raises(BadCredentials):
        await rig.login("alice", PASSWORD + code, second_factor="ldap_opt_in")
    assert (await rig.login("alice", second_factor="ldap_opt_in")).method == "password"

    await rig.store.users.update(user.id, ldap_totp=True)
    with pytest.raises(BadCredentials):
        await rig.login("alice", second_factor="ldap_opt_in")
    identity = await rig.login("alice", PASSWORD + code, second_factor="ldap_opt_in")
    assert identity.method == "password+totp"
    # Never cached: the same bind again is a replay.
    with pytest.raises(BadCredentials):
        await rig.login("alice", PASSWORD + code, second_factor="ldap_opt_in")


# -- app secrets (addon credentials) ----------------------------------------------------------


async def test_app_secret_ldap(rig: Rig) -> None:
    app = await rig.add_app()
    secret = secrets.token_hex(24)
    await rig.store.apps.set_credentials(app.id, "ldap", {"password": secret})
    context = LoginContext("ldap", SOURCE)

    identity = await rig.portal.login(AppSecret("ldap", app.id, secret, context))
    assert identity == AppIdentity(app_id=app.id, addon="ldap", principal=app.id)
    with pytest.raises(BadCredentials):
        await rig.portal.login(AppSecret("ldap", app.id, secret[:-1] + "x", context))
    with pytest.raises(UnknownAccount):
        await rig.portal.login(AppSecret("ldap", "no-such-app", secret, context))
    assert rig.hasher.verifies == 0


async def test_app_secret_sendmail(rig: Rig) -> None:
    app = await rig.add_app()
    secret = secrets.token_hex(24)
    await rig.store.apps.set_credentials(
        app.id, "sendmail", {"username": "wiki.app@example.com", "password": secret}
    )
    context = LoginContext("smtp", SOURCE)

    identity = await rig.portal.login(
        AppSecret("sendmail", "Wiki.App@example.com", secret, context)
    )
    assert identity == AppIdentity(app.id, addon="sendmail", principal="wiki.app@example.com")
    with pytest.raises(BadCredentials):
        await rig.portal.login(AppSecret("sendmail", "wiki.app@example.com", "x" * 48, context))
    with pytest.raises(UnknownAccount):
        await rig.portal.login(AppSecret("sendmail", "other.app@example.com", secret, context))
    # The ldap secret is not the sendmail secret.
    with pytest.raises(UnknownAccount):
        await rig.portal.login(AppSecret("ldap", app.id, secret, context))


# -- Cloudron import (E.3) --------------------------------------------------------------------


def node_pbkdf2_row(password: str) -> tuple[str, str]:
    """A Cloudron users row's (password, salt) columns, derived the way box's Node code does."""
    salt = secrets.token_bytes(64)
    key = hashlib.pbkdf2_hmac("sha1", password.encode(), salt, 10_000, 512)
    return key.hex(), salt.hex()


async def test_cloudron_hash_verifies_and_is_rehashed(rig: Rig) -> None:
    password_hex, salt_hex = node_pbkdf2_row(PASSWORD)
    imported = from_cloudron(password_hex.upper(), salt_hex)
    assert imported == cloudron_hash(PASSWORD, bytes.fromhex(salt_hex))
    user = await rig.store.users.add(
        username="alice", email="alice@example.com", password_hash=imported
    )

    with pytest.raises(BadCredentials):
        await rig.login("alice", WRONG)
    assert (await rig.store.users.get(user.id)).password_hash == imported
    assert rig.hasher.hashes == 0

    assert (await rig.login("alice")).method == "password"
    upgraded = (await rig.store.users.get(user.id)).password_hash
    assert upgraded.startswith("$argon2id$")
    assert rig.hasher.hashes == 1
    assert await rig.hasher.verify(PASSWORD, upgraded)
    assert not await rig.hasher.verify(WRONG, upgraded)

    rig.portal.verifier.cache.clear()
    assert (await rig.login("alice")).method == "password"
    assert rig.hasher.hashes == 1, "an argon2id hash with today's parameters is kept"


# -- the rate-limit policy --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decision", "error"),
    [
        (Banned(scope="account", until=2e9, retry_after=300.0), Locked),
        (Delay(retry_after=4.0, scope="source"), RateLimited),
    ],
    ids=["banned", "delayed"],
)
async def test_policy_refusal_comes_before_any_password_work(
    rig: Rig, decision: Decision, error: type[RateLimited]
) -> None:
    await rig.add_user("alice")
    rig.policy.decision = decision
    with pytest.raises(error) as refused:
        await rig.login("alice")
    assert type(refused.value) is error
    assert refused.value.retry_after == decision.retry_after  # type: ignore[union-attr]
    with pytest.raises(error):
        await rig.login("nobody")
    assert rig.hasher.verifies == 0
    # A refused attempt was never tried, so there is no outcome to count.
    assert rig.policy.records == []
    actions = [e.action for e in await rig.events()]
    assert actions == ["user.lockout" if error is Locked else "user.login.delayed"] * 2


async def test_policy_is_asked_first_and_told_every_outcome(rig: Rig) -> None:
    await rig.add_user("alice")
    await rig.add_user("bob", active=False)
    closed = await rig.add_app(AccessRestriction())

    attempts: list[tuple[str, str, str | None, type[Exception] | None]] = [
        ("nobody", PASSWORD, None, UnknownAccount),
        ("alice", WRONG, None, BadCredentials),
        ("bob", PASSWORD, None, Inactive),
        ("alice", PASSWORD, closed.id, NoAccess),
        ("Alice", PASSWORD, None, None),
    ]
    for login, password, app_id, failure in attempts:
        if failure is None:
            await rig.login(login, password, app_id=app_id)
        else:
            with pytest.raises(failure):
                await rig.login(login, password, app_id=app_id)

    assert rig.policy.outcomes == [
        Outcome.FAILURE, Outcome.FAILURE, Outcome.REFUSED, Outcome.REFUSED, Outcome.SUCCESS,
    ]
    # Asked before each attempt's password work began.
    assert rig.policy.verifies_at_check == [0, 1, 2, 3, 4]
    checked = rig.policy.checks
    assert [a.account for a in checked] == ["nobody", "alice", "bob", "alice", "alice"]
    assert {(a.door, a.source) for a in checked} == {("ldap", SOURCE)}
    # The policy tells repeated guesses apart by a keyed digest, never the secret.
    assert checked[1].secret_digest != checked[0].secret_digest
    assert all(a.secret_digest and PASSWORD not in a.secret_digest for a in checked)
    assert all(PASSWORD not in repr(a) and WRONG not in repr(a) for a in checked)
    assert [a for a, _ in rig.policy.records] == checked


async def test_second_step_pending_is_not_an_outcome(rig: Rig, frozen_step: int) -> None:
    await totp_user(rig)
    with pytest.raises(TwoFactorRequired):
        await rig.login("alice", door="proxyauth", second_factor="enforce")
    assert rig.policy.records == []


# -- the audit trail --------------------------------------------------------------------------


async def test_audit_records_every_outcome_without_secrets(
    rig: Rig, caplog: pytest.LogCaptureFixture, frozen_step: int
) -> None:
    caplog.set_level(logging.DEBUG)
    alice = await rig.add_user("alice")
    await rig.add_user("bob", active=False)
    user, totp = await totp_user_named(rig, "carol")
    closed = await rig.add_app(AccessRestriction(), location="closed")
    app = await rig.add_app(location="wiki")
    app_secret = secrets.token_hex(24)
    await rig.store.apps.set_credentials(app.id, "ldap", {"password": app_secret})

    async def attempt(creds: Credentials) -> None:
        with contextlib.suppress(LoginFailed):
            await rig.portal.login(creds)

    def ctx(door: Door = "ldap", app_id: str | None = app.id) -> LoginContext:
        return LoginContext(door, SOURCE, app_id, "skip")

    valid = {totp.generate_otp(frozen_step + d) for d in (-1, 0, 1)}
    wrong_code = next(c for c in ("000000", "123456", "654321") if c not in valid)
    await attempt(UserPassword("nobody", PASSWORD, ctx()))
    await attempt(UserPassword("alice", WRONG, ctx()))
    await attempt(UserPassword("bob", PASSWORD, ctx()))
    await attempt(UserPassword("alice", PASSWORD, ctx(app_id=closed.id)))
    await attempt(PasswordTOTP("carol", PASSWORD, wrong_code, ctx("proxyauth")))
    await attempt(AppSecret("ldap", app.id, WRONG, ctx(app_id=None)))
    await attempt(UserPassword("alice", PASSWORD, ctx("smtp")))
    await attempt(AppSecret("ldap", app.id, app_secret, ctx(app_id=None)))

    events = await rig.events()
    seen = [(e.action, e.door, e.app_id, e.source, e.login, e.reason) for e in events]
    assert seen == [
        ("user.login.failed", "ldap", app.id, SOURCE, "nobody", "unknown"),
        ("user.login.failed", "ldap", app.id, SOURCE, "alice", "wrong_secret"),
        ("user.login.failed", "ldap", app.id, SOURCE, "bob", "inactive"),
        ("user.login.failed", "ldap", closed.id, SOURCE, "alice", "no_access"),
        ("user.login.failed", "proxyauth", app.id, SOURCE, "carol", "wrong or reused TOTP code"),
        ("app.login.failed", "ldap", None, SOURCE, f"ldap:{app.id}", "wrong_secret"),
        ("user.login", "smtp", app.id, SOURCE, "alice", "password"),
        ("app.login", "ldap", app.id, SOURCE, app.id, "ldap"),
    ]
    assert events[6].user_id == alice.id
    assert user.id not in {e.user_id for e in events}

    secrets_used = (PASSWORD, WRONG, app_secret)
    stored = " ".join(repr(e) for e in events)
    logged = caplog.text + " ".join(repr(r.__dict__) for r in caplog.records)
    assert len(caplog.records) >= len(events), "every event is logged at once, too"
    for secret in secrets_used:
        assert secret not in stored
        assert secret not in logged


async def totp_user_named(rig: Rig, name: str) -> tuple[User, pyotp.TOTP]:
    user = await rig.add_user(name)
    secret = pyotp.random_base32(32)
    await rig.store.users.set_totp(user.id, secret, True)
    return user, pyotp.TOTP(secret)


# -- the verified cache -----------------------------------------------------------------------


async def test_second_login_skips_hashing(rig: Rig) -> None:
    await rig.add_user("alice")
    await rig.add_user("bob")
    first = await rig.login("alice")
    assert rig.hasher.verifies == 1
    assert await rig.login("alice") == first
    assert await rig.login(" ALICE ") == first
    assert rig.hasher.verifies == 1
    # A wrong password is never answered from the cache, nor cached.
    for _ in range(2):
        with pytest.raises(BadCredentials):
            await rig.login("alice", WRONG)
    assert rig.hasher.verifies == 3
    # Each user and each app is its own entry.
    await rig.login("bob")
    assert rig.hasher.verifies == 4
    # Cached answers are still audited and told to the policy.
    assert rig.policy.outcomes.count(Outcome.SUCCESS) == 4
    # alice's three successes wait for the same write: stored once, counted three times.
    successes = [e for e in await rig.events() if e.action == "user.login"]
    assert sum(e.data.get("count", 1) for e in successes) == 4


@dataclass
class Warm:
    """Alice can use the wiki through her group; both her secrets are verified and cached."""

    user: User
    group: Group
    app: App
    app_password_id: str
    app_password: str


async def warm_cache(rig: Rig) -> Warm:
    user = await rig.add_user("alice")
    group = await rig.store.groups.add("staff")
    await rig.store.groups.add_member(group.id, user.id)
    app = await rig.add_app(AccessRestriction(groups=(group.id,)))
    password_id, app_password = await rig.app_password(user, app.id)
    for secret in (PASSWORD, app_password, PASSWORD, app_password):
        await rig.login("alice", secret, app_id=app.id, app_passwords_for=app.id)
    # Main password: one verify; app password: main hash tried first, then the app password.
    assert rig.hasher.verifies == 3
    return Warm(user, group, app, password_id, app_password)


CHANGES: dict[str, tuple[Callable[[Rig, Warm], object], str, type[Exception]]] = {
    "password-change": (
        lambda rig, w: rig.store.users.set_password_hash(w.user.id, rig.hasher.hash_now(WRONG)),
        "main",
        BadCredentials,
    ),
    "deactivation": (
        lambda rig, w: rig.store.users.update(w.user.id, active=False), "main", Inactive
    ),
    "app-password-revoke": (
        lambda rig, w: rig.store.app_passwords.revoke(w.app_password_id), "app", BadCredentials
    ),
    "group-membership": (
        lambda rig, w: rig.store.groups.remove_member(w.group.id, w.user.id), "main", NoAccess
    ),
    "app-access": (
        lambda rig, w: rig.store.apps.update(w.app.id, access=AccessRestriction()),
        "main",
        NoAccess,
    ),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
async def test_cache_is_invalidated_at_once(
    rig: Rig, change: tuple[Callable[[Rig, Warm], object], str, type[Exception]]
) -> None:
    make_change, which, error = change
    warm = await warm_cache(rig)
    secret = PASSWORD if which == "main" else warm.app_password
    await make_change(rig, warm)  # type: ignore[misc]
    before = rig.hasher.verifies
    with pytest.raises(error):
        await rig.login("alice", secret, app_id=warm.app.id, app_passwords_for=warm.app.id)
    assert rig.hasher.verifies > before, "answered from a stale cache entry"


async def test_cache_invalidation_is_per_user(rig: Rig) -> None:
    alice = await rig.add_user("alice")
    await rig.add_user("bob")
    await rig.login("alice")
    await rig.login("bob")
    await rig.store.users.update(alice.id, display_name="Alice")
    assert (await rig.login("alice")).display_name == "Alice"
    await rig.login("bob")
    assert rig.hasher.verifies == 3, "bob's entry survives a change to alice"


async def test_enabling_totp_drops_a_cached_form_login(rig: Rig, frozen_step: int) -> None:
    user = await rig.add_user("alice")
    await rig.login("alice", door="proxyauth", second_factor="enforce")
    await rig.store.users.set_totp(user.id, pyotp.random_base32(32), True)
    with pytest.raises(TwoFactorRequired):
        await rig.login("alice", door="proxyauth", second_factor="enforce")


async def test_change_during_a_login_in_flight_is_not_cached_over(rig: Rig) -> None:
    """A login verified against the old hash while the password changed must not be cached:
    the old password would keep working for the cache's whole lifetime."""
    user = await rig.add_user("alice")
    rig.hasher.gate = asyncio.Event()
    in_flight = asyncio.create_task(rig.login("alice"))
    await rig.hasher.wait_for_verifies(1)
    await rig.store.users.set_password_hash(user.id, rig.hasher.hash_now(WRONG))
    rig.hasher.gate.set()
    # It raced the change, so either answer is fair for this one attempt.
    with contextlib.suppress(LoginFailed):
        await asyncio.wait_for(in_flight, 10)
    with pytest.raises(BadCredentials):
        await rig.login("alice")
    assert (await rig.login("alice", WRONG)).user_id == user.id


def identity_of(user_id: str) -> UserIdentity:
    return UserIdentity(user_id, "u", "u@example.com", "U", "user", (), (), "password")


def test_cache_entries_expire_and_are_bounded() -> None:
    now = [1000.0]
    cache = VerifiedCache(b"k" * 32, ttl=60, max_entries=2, clock=lambda: now[0])
    first, second, third = (cache.digest("user", name, PASSWORD) for name in "abc")
    assert PASSWORD.encode() not in first
    cache.put(first, identity_of("uid-a"), None)
    now[0] += 59.9
    assert cache.get(first) == identity_of("uid-a")
    now[0] += 0.2
    assert cache.get(first) is None
    assert len(cache) == 0
    for digest, user_id in ((first, "uid-a"), (second, "uid-b"), (third, "uid-c")):
        cache.put(digest, identity_of(user_id), "app")
    # The oldest went to make room.
    assert (cache.get(first), len(cache)) == (None, 2)
    cache.on_change(Change("app", "app"))
    assert len(cache) == 0
    # Off: nothing is kept.
    off = VerifiedCache(b"k" * 32, ttl=0, max_entries=10)
    off.put(first, identity_of("uid-a"), None)
    assert (off.enabled, len(off)) == (False, 0)


class CancelTurnedIntoError:
    """Audit storage whose first write, when cancelled, raises an error instead (as asyncpg
    does when the rollback after a cancelled query times out); later writes succeed."""

    def __init__(self) -> None:
        self.writing = asyncio.Event()
        self.stored: list[AuditEvent] = []
        self._first = True

    async def add(self, events: list[AuditEvent]) -> None:
        if self._first:
            self._first = False
            self.writing.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                raise TimeoutError("rollback timed out") from None
        self.stored.extend(events)


async def test_audit_close_ends_even_if_the_store_swallows_the_cancel() -> None:
    events = CancelTurnedIntoError()
    audit = AuditLog(events, interval=0.001)  # type: ignore[arg-type]
    audit.record("user.login", door="ldap", login="alice")
    await asyncio.wait_for(events.writing.wait(), 10)
    await asyncio.wait_for(audit.close(), 10)
    # The batch the cancelled write held was put back and written by close().
    assert [e.login for e in events.stored] == ["alice"]


async def test_a_damaged_cloudron_hash_is_a_wrong_password_not_a_crash() -> None:
    hasher = PasswordHasher(HashParams(1, 1024, 1))
    try:
        assert not await hasher.verify("anything", "cloudron-pbkdf2-sha1$zz$00")
        assert not await hasher.verify("anything", "cloudron-pbkdf2-sha1$nodollar")
    finally:
        hasher.close()


class RecordingEvents:
    """A store stand-in that keeps what it was asked to write, failing when told to."""

    def __init__(self) -> None:
        self.stored: list[AuditEvent] = []
        self.fail_next = False

    async def add(self, events: list[AuditEvent]) -> None:
        if self.fail_next:
            self.fail_next = False
            raise OSError("store unavailable")
        self.stored.extend(events)


async def test_repeated_successes_are_stored_once_with_a_count_failures_each() -> None:
    events = RecordingEvents()
    audit = AuditLog(events, interval=3600)  # type: ignore[arg-type]
    for _ in range(500):
        audit.record("user.login", door="ldap", source="10.0.0.5", user_id="u1", login="alice",
                     reason="password")
    audit.record("user.login", door="ldap", source="10.0.0.6", user_id="u1", login="alice",
                 reason="password")
    for _ in range(3):
        audit.record("user.login.failed", door="ldap", source="10.0.0.7", login="alice",
                     reason="wrong_secret")
    # A failed write keeps everything, counts included, ahead of what comes next.
    events.fail_next = True
    with pytest.raises(OSError, match="store unavailable"):
        await audit.flush()
    audit.record("user.login", door="ldap", source="10.0.0.5", user_id="u1", login="alice",
                 reason="password")
    audit.record("user.login", door="ldap", source="10.0.0.5", user_id="u1", login="alice",
                 reason="password")
    await audit.close()
    summary = [(e.action, e.source, e.data.get("count")) for e in events.stored]
    assert summary == [
        ("user.login", "10.0.0.5", 500),
        ("user.login", "10.0.0.6", None),
        ("user.login.failed", "10.0.0.7", None),
        ("user.login.failed", "10.0.0.7", None),
        ("user.login.failed", "10.0.0.7", None),
        ("user.login", "10.0.0.5", 2),
    ]
    assert events.stored[0].data["last_at"] >= events.stored[0].at


async def test_every_name_of_a_user_is_one_account_to_the_policy(rig: Rig) -> None:
    user = await rig.add_user("alice")
    for login in ("alice", "Alice@Example.com", user.id, " ALICE "):
        with pytest.raises(BadCredentials):
            await rig.login(login, WRONG)
    # An unknown name is counted as typed; it names nobody to resolve.
    with pytest.raises(UnknownAccount):
        await rig.login("nobody@example.com", WRONG)
    accounts = [attempt.account for attempt in rig.policy.checks]
    assert accounts == ["alice"] * 4 + ["nobody@example.com"]
    # A new email reaches the key at once (the store's change clears what was resolved).
    await rig.store.users.update(user.id, email="alice@example.org")
    with pytest.raises(BadCredentials):
        await rig.login("alice@example.org", WRONG)
    assert rig.policy.checks[-1].account == "alice"
