"""The store's contract, run on SQLite and on PostgreSQL alike (``store_url`` is parametrized)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.store import (
    RESET,
    Change,
    ChangeHub,
    Conflict,
    InvalidValue,
    NotFound,
    Store,
    migrations,
    open_store,
)
from gateway.store.models import AccessRestriction, AuditEvent, User
from gateway.store.sessions import session_key

pytestmark = pytest.mark.asyncio

HEAR_TIMEOUT = 1.0


async def add_user(store: Store, name: str = "alice", **extra: object) -> User:
    return await store.users.add(
        username=name, email=f"{name}@example.com", password_hash=f"hash-{name}", **extra  # type: ignore[arg-type]
    )


@pytest.fixture
async def second_store(store_url: str, tmp_path: Path) -> AsyncIterator[Store]:
    """Another Store on the same database: a second process, or a second node."""
    other = await open_store(store_url, data_dir=tmp_path)
    try:
        yield other
    finally:
        await other.close()


async def write_and_roll_back(store: Store, change: Change, sql: str) -> None:
    async with store.db.transaction() as tx:
        await tx.execute(sql)
        tx.changed(change)
        raise RuntimeError("changed my mind")


class Heard:
    """Collects what a ChangeHub publishes; ``await until(change)`` waits for one of them."""

    def __init__(self, hub: ChangeHub) -> None:
        self.changes: list[Change] = []
        self._waiting: dict[Change, asyncio.Event] = {}
        hub.subscribe(self._on_change)

    def _on_change(self, change: Change) -> None:
        self.changes.append(change)
        if change in self._waiting:
            self._waiting[change].set()

    async def until(self, change: Change) -> None:
        if change not in self.changes:
            event = self._waiting.setdefault(change, asyncio.Event())
            await asyncio.wait_for(event.wait(), HEAR_TIMEOUT)


# -- users --------------------------------------------------------------------------------


async def test_user_add_and_find(store: Store) -> None:
    user = await store.users.add(
        username="Alice", email="Alice@Example.COM", password_hash="h", display_name="Alice A"
    )
    assert user.id.startswith("uid-")
    assert (user.username, user.email, user.fallback_email) == (
        "alice", "alice@example.com", "alice@example.com"
    )
    assert user.role == "user"
    assert user.active
    assert not user.totp_enabled
    assert await store.users.get(user.id) == user
    for login in (user.id, "alice", "ALICE ", "alice@example.com", "ALICE@example.com"):
        assert await store.users.find(login) == user, login
    assert await store.users.find("bob") is None
    assert await store.users.find("alice@example.org") is None
    with pytest.raises(NotFound):
        await store.users.resolve("bob")
    with pytest.raises(NotFound):
        await store.users.get("uid-missing")


async def test_user_list_and_count(store: Store) -> None:
    invited = await store.users.add(username=None, email="new@example.com", password_hash="h")
    await add_user(store, "carol")
    await add_user(store, "bob")
    assert [u.username for u in await store.users.list()] == ["bob", "carol", None]
    assert (await store.users.list())[-1] == invited
    assert await store.users.count() == 3


async def test_user_update(store: Store) -> None:
    user = await add_user(store)
    await add_user(store, "bob")
    updated = await store.users.update(
        user.id, display_name="Al", email="AL@example.com", role="admin", active=False
    )
    assert (updated.display_name, updated.email, updated.role, updated.active) == (
        "Al", "al@example.com", "admin", False
    )
    assert updated.is_admin
    assert updated.modified_at >= user.modified_at
    assert await store.users.find("al@example.com") == updated
    assert await store.users.update(user.id) == updated
    with pytest.raises(Conflict):
        await store.users.update(user.id, email="bob@example.com")
    with pytest.raises(InvalidValue):
        await store.users.update(user.id, username="mallory")
    with pytest.raises(InvalidValue):
        await store.users.update(user.id, role="root")
    with pytest.raises(InvalidValue):
        await store.users.update(user.id, email="not an address")
    with pytest.raises(NotFound):
        await store.users.update("uid-missing", display_name="x")


async def test_user_conflicts(store: Store) -> None:
    await add_user(store)
    with pytest.raises(Conflict):
        await store.users.add(username="ALICE", email="other@example.com", password_hash="h")
    with pytest.raises(Conflict):
        await store.users.add(username="other", email="Alice@Example.com", password_hash="h")
    assert await store.users.count() == 1


async def test_racing_adds_of_one_username_conflict(store: Store) -> None:
    results = await asyncio.gather(
        *(
            store.users.add(username="alice", email=f"a{i}@example.com", password_hash="h")
            for i in range(4)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(r, User) for r in results) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 3


@pytest.mark.parametrize(
    "username",
    ["admin", "postmaster", "no-reply", "root", "blog.app", "my.apps", "Bad Name", "under_score",
     "", "x" * 200, "uid-1234"],
)
async def test_user_refuses_bad_username(store: Store, username: str) -> None:
    with pytest.raises(InvalidValue) as raised:
        await store.users.add(username=username, email="x@example.com", password_hash="h")
    assert raised.value.field == "username"


@pytest.mark.parametrize("email", ["nope", "a@b", "a@@example.com", "a b@example.com", "@x.org"])
async def test_user_refuses_bad_email(store: Store, email: str) -> None:
    with pytest.raises(InvalidValue) as raised:
        await store.users.add(username="alice", email=email, password_hash="h")
    assert raised.value.field == "email"


async def test_user_refuses_bad_role(store: Store) -> None:
    with pytest.raises(InvalidValue) as raised:
        await add_user(store, role="superuser")
    assert raised.value.field == "role"
    assert await store.users.count() == 0


async def test_user_remove(store: Store) -> None:
    user = await add_user(store)
    await store.users.remove(user.id)
    assert await store.users.find("alice") is None
    with pytest.raises(NotFound):
        await store.users.remove(user.id)


async def test_set_password_hash_and_rehash(store: Store) -> None:
    user = await add_user(store)
    await store.users.set_password_hash(user.id, "second")
    assert (await store.users.get(user.id)).password_hash == "second"
    with pytest.raises(NotFound):
        await store.users.set_password_hash("uid-missing", "x")
    # Compare-and-swap: a login that verified the old hash loses to a password change.
    assert not await store.users.rehash(user.id, "hash-alice", "upgraded")
    assert await store.users.rehash(user.id, "second", "upgraded")
    assert (await store.users.get(user.id)).password_hash == "upgraded"
    assert not await store.users.rehash(user.id, "second", "again")


async def test_totp_steps_are_claimed_once(store: Store) -> None:
    user = await add_user(store)
    await store.users.set_totp(user.id, "JBSWY3DPEHPK3PXP", True)
    stored = await store.users.get(user.id)
    assert stored.totp_enabled
    assert stored.totp_secret == "JBSWY3DPEHPK3PXP"
    assert await store.users.claim_totp_step(user.id, 1000)
    assert not await store.users.claim_totp_step(user.id, 1000)
    assert not await store.users.claim_totp_step(user.id, 999)
    assert await store.users.claim_totp_step(user.id, 1001)
    assert (await store.users.get(user.id)).totp_last_step == 1001
    assert not await store.users.claim_totp_step("uid-missing", 5)
    # A new secret starts a new history.
    await store.users.set_totp(user.id, "NEWSECRETNEWSECR", True)
    assert (await store.users.get(user.id)).totp_last_step is None
    assert await store.users.claim_totp_step(user.id, 900)
    await store.users.set_totp(user.id, None, False)
    assert (await store.users.get(user.id)).totp_secret is None
    with pytest.raises(NotFound):
        await store.users.set_totp("uid-missing", None, False)


async def test_concurrent_claims_of_one_step_have_one_winner(
    store: Store, second_store: Store
) -> None:
    user = await add_user(store)
    claims = [
        s.users.claim_totp_step(user.id, 5000) for s in (store, second_store) for _ in range(5)
    ]
    assert sorted(await asyncio.gather(*claims)) == [False] * 9 + [True]


# -- groups -------------------------------------------------------------------------------


async def test_groups_and_members(store: Store) -> None:
    alice, bob = await add_user(store), await add_user(store, "bob")
    staff = await store.groups.add("Staff")
    ops = await store.groups.add("ops")
    assert staff.id.startswith("gid-")
    assert staff.name == "staff"
    assert await store.groups.resolve("STAFF") == staff
    assert await store.groups.resolve(staff.id) == staff
    assert [g.name for g in await store.groups.list()] == ["ops", "staff"]
    await store.groups.add_member(staff.id, alice.id)
    await store.groups.add_member(staff.id, alice.id)  # twice is once
    await store.groups.add_member(staff.id, bob.id)
    await store.groups.add_member(ops.id, alice.id)
    assert await store.groups.members(staff.id) == sorted([alice.id, bob.id])
    assert await store.groups.of_user(alice.id) == [ops, staff]
    assert sorted(await store.groups.memberships()) == sorted(
        [(staff.id, alice.id), (staff.id, bob.id), (ops.id, alice.id)]
    )
    await store.groups.remove_member(staff.id, bob.id)
    assert await store.groups.members(staff.id) == [alice.id]
    with pytest.raises(NotFound):
        await store.groups.remove_member(staff.id, bob.id)
    with pytest.raises(NotFound):
        await store.groups.add_member(staff.id, "uid-missing")
    with pytest.raises(NotFound):
        await store.groups.add_member("gid-missing", alice.id)
    with pytest.raises(NotFound):
        await store.groups.resolve("nobody")


async def test_group_remove_and_user_remove_cascade_membership(store: Store) -> None:
    alice, bob = await add_user(store), await add_user(store, "bob")
    staff = await store.groups.add("staff")
    ops = await store.groups.add("ops")
    for group in (staff, ops):
        await store.groups.add_member(group.id, alice.id)
    await store.groups.add_member(ops.id, bob.id)
    await store.groups.remove(staff.id)
    assert await store.groups.of_user(alice.id) == [ops]
    with pytest.raises(NotFound):
        await store.groups.remove(staff.id)
    await store.users.remove(alice.id)
    assert await store.groups.members(ops.id) == [bob.id]


@pytest.mark.parametrize("name", ["users", "admins", "Bad Name", "", "gid-1234"])
async def test_group_refuses_bad_names(store: Store, name: str) -> None:
    with pytest.raises(InvalidValue):
        await store.groups.add(name)


async def test_group_name_conflict(store: Store) -> None:
    await store.groups.add("staff")
    with pytest.raises(Conflict):
        await store.groups.add("STAFF")


# -- apps and addon credentials -----------------------------------------------------------


async def test_apps(store: Store) -> None:
    app = await store.apps.add(
        location="Blog", domain="Example.com", manifest={"title": "Blog"}, upstream="127.0.0.1:1"
    )
    assert (app.location, app.domain, app.fqdn, app.access, app.sso) == (
        "blog", "example.com", "blog.example.com", None, True
    )
    assert await store.apps.get(app.id) == app
    apex = await store.apps.add(location="", domain="example.com", manifest={}, sso=False)
    assert apex.fqdn == "example.com"
    assert not apex.sso
    assert [a.id for a in await store.apps.list()] == [apex.id, app.id]
    with pytest.raises(Conflict):
        await store.apps.add(location="blog", domain="example.com", manifest={})

    restricted = await store.apps.update(
        app.id, manifest={"title": "Blog 2"}, access=AccessRestriction(users=("uid-a",))
    )
    assert restricted.manifest == {"title": "Blog 2"}
    assert restricted.access == AccessRestriction(users=("uid-a",), groups=())
    assert restricted.upstream == "127.0.0.1:1"
    admins_only = await store.apps.update(app.id, access=AccessRestriction(), upstream=None)
    assert admins_only.access == AccessRestriction()
    assert admins_only.upstream is None
    assert (await store.apps.update(app.id, access=None)).access is None
    with pytest.raises(NotFound):
        await store.apps.update("missing", upstream=None)
    with pytest.raises(InvalidValue):
        await store.apps.add(location="x", domain="not a domain", manifest={})


async def test_addon_credentials(store: Store) -> None:
    app = await store.apps.add(location="blog", domain="example.com", manifest={})
    other = await store.apps.add(location="wiki", domain="example.com", manifest={})
    await store.apps.set_credentials(app.id, "sendmail", {"username": "blog.app", "password": "p1"})
    await store.apps.set_credentials(app.id, "ldap", {"bind_password": "p2"})
    await store.apps.set_credentials(other.id, "sendmail", {"username": "wiki.app"})
    assert await store.apps.credentials(app.id, "sendmail") == {
        "username": "blog.app", "password": "p1"
    }
    assert await store.apps.all_credentials(app.id) == {
        "sendmail": {"username": "blog.app", "password": "p1"},
        "ldap": {"bind_password": "p2"},
    }
    assert await store.apps.all_credentials(other.id) == {"sendmail": {"username": "wiki.app"}}
    assert await store.apps.find_by_credential("sendmail", "username", "wiki.app") == other.id
    assert await store.apps.find_by_credential("sendmail", "username", "nobody.app") is None
    # Setting an addon's credentials replaces all of them.
    await store.apps.set_credentials(app.id, "sendmail", {"username": "news.app"})
    assert await store.apps.credentials(app.id, "sendmail") == {"username": "news.app"}
    assert await store.apps.credentials(app.id, "redis") == {}
    with pytest.raises(NotFound):
        await store.apps.set_credentials("missing", "ldap", {"x": "y"})


async def test_app_remove_cascades(store: Store) -> None:
    user = await add_user(store)
    app = await store.apps.add(location="blog", domain="example.com", manifest={})
    other = await store.apps.add(location="wiki", domain="example.com", manifest={})
    await store.apps.set_credentials(app.id, "sendmail", {"username": "blog.app"})
    await store.app_passwords.add(user.id, "phone", app.id, "h1")
    mail_password = await store.app_passwords.add(user.id, "laptop", "mail", "h2")
    await store.sessions.put("cookie-app", user_id=user.id, app_id=app.id, expires_at=2e9)
    await store.sessions.put("cookie-other", user_id=user.id, app_id=other.id, expires_at=2e9)

    await store.apps.remove(app.id)
    with pytest.raises(NotFound):
        await store.apps.get(app.id)
    assert await store.apps.all_credentials(app.id) == {}
    assert await store.apps.find_by_credential("sendmail", "username", "blog.app") is None
    assert await store.app_passwords.of_user(user.id) == [mail_password]
    assert await store.sessions.get("cookie-app") is None
    assert await store.sessions.get("cookie-other") is not None
    with pytest.raises(NotFound):
        await store.apps.remove(app.id)


# -- app passwords --------------------------------------------------------------------------


async def test_app_passwords(store: Store) -> None:
    alice, bob = await add_user(store), await add_user(store, "bob")
    phone = await store.app_passwords.add(alice.id, " phone ", "mail", "h1")
    assert (phone.name, phone.identifier, phone.user_id) == ("phone", "mail", alice.id)
    assert phone.id.startswith("apppw-")
    laptop = await store.app_passwords.add(alice.id, "laptop", "app-1", "h2")
    await store.app_passwords.add(bob.id, "bob's", "mail", "h3")
    assert await store.app_passwords.of_user(alice.id) == [phone, laptop]
    assert await store.app_passwords.of_user(alice.id, "mail") == [phone]
    assert await store.app_passwords.of_user(alice.id, "app-2") == []

    with pytest.raises(NotFound):
        await store.app_passwords.revoke(phone.id, bob.id)
    assert await store.app_passwords.of_user(alice.id, "mail") == [phone]
    await store.app_passwords.revoke(phone.id, alice.id)
    await store.app_passwords.revoke(laptop.id)
    assert await store.app_passwords.of_user(alice.id) == []
    with pytest.raises(NotFound):
        await store.app_passwords.revoke(phone.id)
    with pytest.raises(NotFound):
        await store.app_passwords.add("uid-missing", "x", "mail", "h")
    with pytest.raises(InvalidValue):
        await store.app_passwords.add(alice.id, " ", "mail", "h")
    with pytest.raises(InvalidValue):
        await store.app_passwords.add(alice.id, "x", "", "h")


async def test_user_remove_cascades_app_passwords_and_sessions(store: Store) -> None:
    user = await add_user(store)
    await store.app_passwords.add(user.id, "phone", "mail", "h")
    await store.sessions.put("cookie", user_id=user.id, app_id=None, expires_at=2e9)
    await store.users.remove(user.id)
    assert await store.app_passwords.of_user(user.id) == []
    assert await store.sessions.get("cookie") is None


# -- mail -----------------------------------------------------------------------------------


async def test_mail_domains(store: Store) -> None:
    domain = await store.mail.add_domain("Example.COM.", receives=True)
    assert (domain.domain, domain.receives, domain.masquerade) == ("example.com", True, False)
    assert (domain.relay, domain.catch_all, domain.dkim_selector) == ({}, (), "gateway")
    await store.mail.add_domain("example.org")
    assert [d.domain for d in await store.mail.domains()] == ["example.com", "example.org"]
    with pytest.raises(Conflict):
        await store.mail.add_domain("example.com")
    with pytest.raises(InvalidValue):
        await store.mail.add_domain("not a domain")

    updated = await store.mail.update_domain(
        "EXAMPLE.com", relay={"provider": "smtp", "host": "relay.example.net"},
        catch_all=["alice@example.com"], masquerade=True, dkim_private_key="KEY",
    )
    assert updated.relay == {"provider": "smtp", "host": "relay.example.net"}
    assert updated.catch_all == ("alice@example.com",)
    assert updated.masquerade
    assert updated.dkim_private_key == "KEY"
    assert await store.mail.update_domain("example.com") == updated
    with pytest.raises(InvalidValue):
        await store.mail.update_domain("example.com", created_at=0.0)
    with pytest.raises(NotFound):
        await store.mail.update_domain("example.net", receives=True)
    with pytest.raises(NotFound):
        await store.mail.domain("example.net")


async def test_mailboxes_aliases_and_lists(store: Store) -> None:
    user = await add_user(store)
    await store.mail.add_domain("example.com", receives=True)
    box = await store.mail.add_mailbox("Alice", "example.com", owner_id=user.id, quota_bytes=10)
    assert (box.address, box.kind, box.owner_type, box.active, box.quota_bytes) == (
        "alice@example.com", "mailbox", "user", True, 10
    )
    alias = await store.mail.add_mailbox(
        "al", "example.com", kind="alias", alias_target="Alice@example.com", owner_id=user.id
    )
    assert alias.alias_target == "alice@example.com"
    team = await store.mail.add_mailbox(
        "team", "example.com", kind="list", members=("Alice@example.com", "bob@example.org")
    )
    assert team.members == ("alice@example.com", "bob@example.org")
    assert await store.mail.mailbox("ALICE@Example.com") == box
    assert [m.name for m in await store.mail.mailboxes("example.com")] == ["al", "alice", "team"]
    assert [m.name for m in await store.mail.mailboxes()] == ["al", "alice", "team"]
    assert await store.mail.owned_by(user.id) == [alias, box]

    with pytest.raises(Conflict):
        await store.mail.add_mailbox("alice", "example.com")
    with pytest.raises(NotFound):
        await store.mail.add_mailbox("alice", "example.org")
    with pytest.raises(InvalidValue):
        await store.mail.add_mailbox("x", "example.com", kind="alias")
    with pytest.raises(InvalidValue):
        await store.mail.add_mailbox("x", "example.com", kind="list")
    with pytest.raises(InvalidValue):
        await store.mail.add_mailbox("x@y", "example.com")
    with pytest.raises(InvalidValue):
        await store.mail.add_mailbox("x", "example.com", kind="forward")  # type: ignore[arg-type]

    await store.mail.remove_mailbox("al@example.com")
    with pytest.raises(NotFound):
        await store.mail.mailbox("al@example.com")
    with pytest.raises(NotFound):
        await store.mail.remove_mailbox("al@example.com")
    await store.mail.remove_domain("example.com")
    assert await store.mail.mailboxes() == []
    with pytest.raises(NotFound):
        await store.mail.remove_domain("example.com")


# -- audit, sessions, settings --------------------------------------------------------------


async def test_audit_recent_with_filters(store: Store) -> None:
    events = [
        AuditEvent("user.login", "ldap", at=100.0, user_id="uid-a", source="10.0.0.1"),
        AuditEvent("user.login.failed", "smtp", at=101.0, login="bob", reason="bad password"),
        AuditEvent("user.login", "proxyauth", at=102.0, user_id="uid-b", app_id="app-1"),
        AuditEvent("user.login", "ldap", at=103.0, user_id="uid-a", data={"attempt": 2}),
    ]
    await store.audit.add(events)
    await store.audit.add([])
    recent = await store.audit.recent()
    assert [e.at for e in recent] == [100.0, 101.0, 102.0, 103.0]
    assert recent[1].reason == "bad password"
    assert recent[1].login == "bob"
    assert recent[3].data == {"attempt": 2}
    assert recent[0].source == "10.0.0.1"
    assert all(e.id for e in recent)
    assert [e.at for e in await store.audit.recent(limit=2)] == [102.0, 103.0]
    assert [e.at for e in await store.audit.recent(action="user.login")] == [100.0, 102.0, 103.0]
    assert [e.at for e in await store.audit.recent(user_id="uid-a")] == [100.0, 103.0]
    assert [e.at for e in await store.audit.recent(door="smtp")] == [101.0]
    assert [e.at for e in await store.audit.recent(action="user.login", door="ldap", limit=1)] == [
        103.0
    ]
    assert await store.audit.recent(user_id="uid-nobody") == []


async def test_web_sessions(store: Store) -> None:
    alice, bob = await add_user(store), await add_user(store, "bob")
    session = await store.sessions.put(
        "secret-token", user_id=alice.id, app_id=None, expires_at=1000.0, data={"methods": ["pwd"]}
    )
    # Only the token's hash is kept: a leaked row opens no session.
    assert session.id == session_key("secret-token") != "secret-token"
    assert await store.sessions.get(session.id) is None
    found = await store.sessions.get("secret-token")
    assert found is not None
    assert found.user_id == alice.id
    assert found.data == {"methods": ["pwd"]}
    await store.sessions.touch("secret-token", 500.0)
    touched = await store.sessions.get("secret-token")
    assert touched is not None
    assert touched.last_seen == 500.0

    await store.sessions.put("second", user_id=alice.id, app_id="app-1", expires_at=3000.0)
    await store.sessions.put("bob", user_id=bob.id, app_id=None, expires_at=3000.0)
    await store.sessions.put("old", user_id=bob.id, app_id=None, expires_at=10.0)
    assert await store.sessions.remove_expired(1500.0) == 2
    assert await store.sessions.get("secret-token") is None
    assert await store.sessions.remove_for_user(alice.id) == 1
    assert await store.sessions.get("second") is None
    await store.sessions.remove("bob")
    assert await store.sessions.get("bob") is None
    with pytest.raises(Conflict):
        await store.sessions.put("orphan", user_id="uid-missing", app_id=None, expires_at=1.0)


async def test_settings_first_value_wins(store: Store, second_store: Store) -> None:
    assert await store.settings.get("secret_key") is None
    assert await store.settings.get_or_create("secret_key", "first") == "first"
    assert await second_store.settings.get_or_create("secret_key", "second") == "first"
    assert await store.settings.get("secret_key") == "first"


# -- migrations -----------------------------------------------------------------------------


LATEST_SCHEMA = max(version for version, _, _ in migrations.available())


async def test_migrate_again_applies_nothing(store: Store, second_store: Store) -> None:
    assert await store.schema_version() == LATEST_SCHEMA
    assert await store.migrate() == []
    assert await second_store.migrate() == []
    assert await store.schema_version() == LATEST_SCHEMA


async def test_stores_opened_together_migrate_once(store_url: str, tmp_path: Path) -> None:
    stores = await asyncio.gather(
        *(open_store(store_url, data_dir=tmp_path, pool_size=1) for _ in range(3))
    )
    try:
        for opened in stores:
            assert await opened.schema_version() == LATEST_SCHEMA
        await add_user(stores[0])
        assert await stores[2].users.count() == 1
    finally:
        for opened in stores:
            await opened.close()


async def test_open_refuses_unknown_urls(tmp_path: Path) -> None:
    with pytest.raises(InvalidValue):
        await open_store("mysql://localhost/x", data_dir=tmp_path)
    with pytest.raises(InvalidValue):
        await open_store("sqlite://host/x.db", data_dir=tmp_path)


async def test_relative_sqlite_path_is_under_data_dir(tmp_path: Path) -> None:
    opened = await open_store("sqlite:///state/store.db", data_dir=tmp_path)
    try:
        assert opened.dialect == "sqlite"
        assert (tmp_path / "state" / "store.db").exists()
    finally:
        await opened.close()


# -- change notifications -------------------------------------------------------------------


async def test_subscribers_hear_each_committed_write(store: Store) -> None:
    heard = Heard(store.changes)
    user = await add_user(store)
    group = await store.groups.add("staff")
    await store.groups.add_member(group.id, user.id)
    await store.app_passwords.add(user.id, "phone", "mail", "h")
    await store.users.set_password_hash(user.id, "new")
    assert heard.changes == [
        Change("user", user.id),
        Change("group", group.id),
        Change("group", group.id),
        Change("user", user.id),
        Change("app_password", user.id),
        Change("user", user.id),
    ]


async def test_rolled_back_writes_are_not_heard(store: Store) -> None:
    await add_user(store)
    heard = Heard(store.changes)
    with pytest.raises(RuntimeError):
        await write_and_roll_back(store, Change("user", "everyone"), "DELETE FROM users")
    with pytest.raises(Conflict):
        await add_user(store)
    assert heard.changes == []
    assert await store.users.count() == 1


async def test_unsubscribed_callback_hears_nothing(store: Store) -> None:
    heard: list[Change] = []
    unsubscribe = store.changes.subscribe(heard.append)
    unsubscribe()
    await add_user(store)
    assert heard == []


async def test_other_store_hears_writes(store: Store, second_store: Store) -> None:
    await store.db.start_change_feed()
    await second_store.db.start_change_feed()
    await store.db.start_change_feed()  # idempotent
    heard_here, heard_there = Heard(store.changes), Heard(second_store.changes)

    mine = await add_user(store)
    await heard_there.until(Change("user", mine.id))
    with pytest.raises(RuntimeError):
        await write_and_roll_back(second_store, Change("user", "rolled-back"), "DELETE FROM users")
    theirs = await add_user(second_store, "bob")
    await heard_here.until(Change("user", theirs.id))

    # Each side hears each write once: its own at commit, the other's through the feed,
    # and the rolled-back one never.
    assert heard_here.changes == [Change("user", mine.id), Change("user", theirs.id)]
    assert heard_there.changes == [Change("user", mine.id), Change("user", theirs.id)]


async def test_sqlite_poller_behind_a_pruned_log_hears_reset(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    reader, writer = await open_store(url), await open_store(url)
    try:
        await reader.db.start_change_feed()
        heard = Heard(reader.changes)
        # Changes the reader never saw, pruned before it looked, then one it can still read.
        async with writer.db.transaction() as tx:
            for key in ("a", "b", "c"):
                await tx.execute(
                    "INSERT INTO change_log (kind, key, at) VALUES ($1, $2, $3)", "user", key, 0.0
                )
            await tx.execute("DELETE FROM change_log")
            tx.changed(Change("user", "d"))
        await heard.until(Change("user", "d"))
        assert heard.changes == [RESET, Change("user", "d")]
    finally:
        await reader.close()
        await writer.close()


@pytest.mark.parametrize("cut", ["begin", "body"])
async def test_sqlite_transaction_cancelled_at_any_step_leaves_nothing_open(
    tmp_path: Path, cut: str
) -> None:
    """A task cancelled while its transaction's BEGIN runs on the worker thread (waiting
    for another process's write lock) or inside its transaction (what a server stopping
    does to its connections) must not leave that thread's connection in a transaction:
    later transactions start, later writes are kept."""
    path = tmp_path / "store.db"
    store = await open_store(f"sqlite:///{path}")
    db = store.db
    other = sqlite3.connect(path, isolation_level=None)
    try:
        async def transaction() -> None:
            async with db.transaction() as tx:
                await tx.execute("DELETE FROM change_log WHERE seq < 0")
                await asyncio.Event().wait()  # cancelled here, inside the transaction

        if cut == "begin":
            # Another process holds the write lock: BEGIN IMMEDIATE waits on the worker
            # thread, and goes through there once the lock is let go, cancelled or not.
            other.execute("BEGIN IMMEDIATE")
        task = asyncio.create_task(transaction())
        for _ in range(30):
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        if cut == "begin":
            other.execute("ROLLBACK")

        user = await store.users.add(username="after", email="after@example.com",
                                     password_hash="x")
        assert (await store.users.get(user.id)).username == "after"
        # Kept: another connection (another process) reads it.
        assert other.execute("SELECT username FROM users").fetchall() == [("after",)]
    finally:
        other.close()
        await store.close()
