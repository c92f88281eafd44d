"""Every bind form and its result codes, over real sockets with ldap3 (SPEC.md "Binds")."""

from __future__ import annotations

import pyotp
import pytest

from gateway.store.models import AccessRestriction
from tests.ldap.clients import blocking, connect, run
from tests.ldap.world import PASSWORD, World


def bind_result(host: str, port: int, dn: str, password: str) -> int:
    conn = connect(host, port)
    try:
        conn.rebind(dn, password)
        return int(conn.result["result"])
    finally:
        conn.unbind()


async def bind(world: World, app: str, dn: str, password: str = PASSWORD) -> int:
    handle = world.apps[app]
    return await blocking(bind_result, handle.server, handle.port, dn, password)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("cn={id},ou=users,dc=cloudron", 0),
        ("cn=alice,ou=users,dc=cloudron", 0),
        ("cn=ALICE,ou=users,dc=cloudron", 0),
        ("uid=alice,ou=users,dc=cloudron", 0),
        ("cn=alice@example.com,ou=users,dc=cloudron", 0),
        ("mail=alice@example.com,ou=users,dc=cloudron", 0),
        ("CN=alice,OU=Users,DC=Cloudron", 0),
        ("mail=alice,ou=users,dc=cloudron", 32),
        ("cn=nobody,ou=users,dc=cloudron", 32),
        ("cn=alice,dc=cloudron", 32),
        ("cn=alice,ou=users,dc=elsewhere", 32),
        ("cn=alice,ou=groups,dc=cloudron", 32),
        ("not a dn", 34),
    ],
)
async def test_user_bind_forms(world: World, template: str, expected: int) -> None:
    dn = template.format(id=world.users["alice"].id)
    assert await bind(world, "wiki", dn) == expected


async def test_wrong_password_is_49_and_unknown_is_32(world: World) -> None:
    assert await bind(world, "wiki", "cn=bob,ou=users,dc=cloudron", "wrong") == 49
    assert await bind(world, "wiki", "cn=ghost,ou=users,dc=cloudron", "wrong") == 32


async def test_access_restriction_on_bind(world: World) -> None:
    # vault admits bob (and admins); carol has no access and looks like nobody (32).
    assert await bind(world, "vault", "cn=bob,ou=users,dc=cloudron") == 0
    assert await bind(world, "vault", "cn=carol,ou=users,dc=cloudron") == 32
    assert await bind(world, "vault", "cn=alice,ou=users,dc=cloudron") == 0
    assert await bind(world, "admins-only", "cn=bob,ou=users,dc=cloudron") == 32
    assert await bind(world, "admins-only", "cn=alice,ou=users,dc=cloudron") == 0
    assert await bind(world, "staffapp", "cn=carol,ou=users,dc=cloudron") == 0
    assert await bind(world, "staffapp", "cn=dave,ou=users,dc=cloudron") == 32


async def test_inactive_user_cannot_bind(world: World) -> None:
    await world.add_user("erin", active=False)
    await world.settled()
    assert await bind(world, "wiki", "cn=erin,ou=users,dc=cloudron") == 32


async def test_unauthenticated_and_anonymous(world: World) -> None:
    app = world.apps["wiki"]
    # ldap3 refuses to send an empty password; ldapwhoami sends what it is given.
    empty = await run("ldapwhoami", "-x", "-H", app.url, "-D", "cn=bob,ou=users,dc=cloudron",
                      "-w", "")
    assert empty.returncode == 53, empty.stderr
    assert await bind(world, "wiki", "", "") == 0


async def test_user_bind_needs_a_known_app(world: World) -> None:
    code = await blocking(bind_result, world.host, world.port,
                          "cn=bob,ou=users,dc=cloudron", PASSWORD)
    assert code == 50


async def test_app_bind_is_checked(world: World) -> None:
    app = world.apps["wiki"]
    assert await bind(world, "wiki", app.bind_dn, app.password) == 0
    assert await bind(world, "wiki", app.bind_dn, "0" * 128) == 49
    assert await blocking(bind_result, world.host, world.port,
                          "cn=no-such-app,ou=apps,dc=cloudron", "x") == 32
    # Another app's credentials on this app's own endpoint: refused.
    other = world.apps["vault"]
    assert await bind(world, "wiki", other.bind_dn, other.password) == 50


async def test_app_bind_identifies_the_app_on_a_shared_address(world: World) -> None:
    """From the shared listener (no address of its own) the app bind says who is asking."""
    vault = world.apps["vault"]

    def flow() -> tuple[int, int, int]:
        conn = connect(world.host, world.port)
        conn.rebind(vault.bind_dn, vault.password)
        first = int(conn.result["result"])
        conn.rebind("cn=carol,ou=users,dc=cloudron", PASSWORD)
        carol = int(conn.result["result"])
        conn.rebind("cn=bob,ou=users,dc=cloudron", PASSWORD)
        bob = int(conn.result["result"])
        conn.unbind()
        return first, carol, bob

    assert await blocking(flow) == (0, 32, 0)


async def test_app_password_works_only_for_its_app(world: World) -> None:
    bob = world.users["bob"]
    wiki = world.apps["wiki"].app
    hashed = await world.portal.verifier.hasher.hash("app-secret-for-wiki")
    await world.store.app_passwords.add(bob.id, "phone", wiki.id, hashed)
    assert await bind(world, "wiki", "cn=bob,ou=users,dc=cloudron", "app-secret-for-wiki") == 0
    assert await bind(world, "vault", "cn=bob,ou=users,dc=cloudron",
                      "app-secret-for-wiki") == 49


async def test_ldap_totp_opt_in(world: World) -> None:
    user = await world.add_user("frank")
    secret = pyotp.random_base32()
    await world.store.users.set_totp(user.id, secret, True)
    await world.store.users.update(user.id, ldap_totp=True)
    await world.settled()
    code = pyotp.TOTP(secret).now()
    assert await bind(world, "wiki", "cn=frank,ou=users,dc=cloudron", PASSWORD + code) == 0
    # The same code twice is refused (RFC 6238 section 5.2), and the bare password too.
    assert await bind(world, "wiki", "cn=frank,ou=users,dc=cloudron", PASSWORD + code) == 49
    assert await bind(world, "wiki", "cn=frank,ou=users,dc=cloudron", PASSWORD) == 49


async def test_failed_bind_leaves_the_connection_anonymous(world: World) -> None:
    app = world.apps["wiki"]

    def flow() -> tuple[int, str]:
        conn = connect(app.server, app.port)
        conn.rebind("cn=bob,ou=users,dc=cloudron", PASSWORD)
        conn.rebind("cn=bob,ou=users,dc=cloudron", "wrong")
        code = int(conn.result["result"])
        who = conn.extend.standard.who_am_i()
        conn.unbind()
        return code, who or ""

    assert await blocking(flow) == (49, "")


async def test_binds_are_audited(world: World) -> None:
    await bind(world, "wiki", "cn=bob,ou=users,dc=cloudron")
    await bind(world, "wiki", "cn=bob,ou=users,dc=cloudron", "wrong")
    await world.audit.flush()
    events = await world.store.audit.recent(limit=20, door="ldap")
    actions = {(e.action, e.door, e.app_id) for e in events}
    wiki = world.apps["wiki"].app.id
    assert ("user.login", "ldap", wiki) in actions
    assert ("user.login.failed", "ldap", wiki) in actions


async def test_mail_binds(world: World) -> None:
    store = world.store
    await store.mail.add_domain("example.com", receives=True)
    await store.mail.add_domain("sendonly.org", receives=False)
    bob = world.users["bob"]
    await store.mail.add_mailbox("bob", "example.com", owner_id=bob.id)
    await store.mail.add_mailbox("bob", "sendonly.org", owner_id=bob.id)
    await store.mail.add_mailbox("team", "example.com", kind="alias", alias_target="bob")
    mailer = await world.add_app("mailer", addons={"sendmail": {}, "recvmail": {}})
    await store.apps.set_credentials(mailer.app.id, "sendmail",
                                     {"username": "mailer.app@example.com", "password": "s" * 48})
    await store.apps.set_credentials(mailer.app.id, "recvmail",
                                     {"username": "mailer.app@example.com", "password": "r" * 48})
    await world.settled()
    mb = "ou=mailboxes,dc=cloudron"
    cases = [
        ("cn=bob@example.com,ou=sendmail,dc=cloudron", PASSWORD, 0),
        ("cn=bob@example.com,ou=recvmail,dc=cloudron", PASSWORD, 0),
        ("cn=bob@sendonly.org,ou=sendmail,dc=cloudron", "wrong", 49),
        ("cn=bob@sendonly.org,ou=recvmail,dc=cloudron", PASSWORD, 32),
        ("cn=alice@example.com,ou=sendmail,dc=cloudron", PASSWORD, 32),
        ("cn=team@example.com,ou=sendmail,dc=cloudron", PASSWORD, 32),
        ("cn=hacker.app@example.com,ou=sendmail,dc=cloudron", "wrong", 32),
        ("cn=mailer.app@example.com,ou=sendmail,dc=cloudron", "s" * 48, 0),
        ("cn=mailer.app@example.com,ou=recvmail,dc=cloudron", "r" * 48, 0),
        ("cn=mailer.app@example.com,ou=recvmail,dc=cloudron", "s" * 48, 49),
        # The app's password is bound to its own address (Cloudron accepted any local part).
        ("cn=bob@example.com,ou=sendmail,dc=cloudron", "s" * 48, 49),
        ("cn=nobody,ou=sendmail,dc=cloudron", PASSWORD, 32),
        (f"cn=bob@example.com,domain=example.com,{mb}", PASSWORD, 0),
        (f"cn=bob@example.com,{mb}", PASSWORD, 0),
        (f"cn=bob@sendonly.org,{mb}", PASSWORD, 32),
    ]
    for dn, password, expected in cases:
        got = await blocking(bind_result, world.host, world.port, dn, password)
        assert got == expected, dn


async def test_access_change_applies_at_once(world: World) -> None:
    assert await bind(world, "vault", "cn=carol,ou=users,dc=cloudron") == 32
    vault = world.apps["vault"].app
    await world.store.apps.update(
        vault.id, access=AccessRestriction(users=(world.users["carol"].id,), groups=()))
    await world.settled()
    assert await bind(world, "vault", "cn=carol,ou=users,dc=cloudron") == 0
