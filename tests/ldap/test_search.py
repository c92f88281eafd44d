"""Searches with ldap3 over real sockets: every filter type, scopes, attribute selection,
typesOnly, limits, paging, access restriction, compare, the mail subtrees, read-only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ldap3
import pytest
from ldap3.core.exceptions import LDAPException

from gateway.store import Store
from tests.ldap.clients import blocking, connect, run
from tests.ldap.world import PASSWORD, World, start_world

USERS = "ou=users,dc=cloudron"


def search(world: World, app: str, base: str, flt: str, **kwargs: Any) -> tuple[int, list[Any]]:
    handle = world.apps[app]
    conn = connect(handle.server, handle.port, handle.bind_dn, handle.password)
    try:
        conn.search(base, flt, **kwargs)
        return int(conn.result["result"]), list(conn.response or [])
    finally:
        conn.unbind()


def names(response: list[Any]) -> list[str]:
    found = []
    for r in response:
        if r.get("type") == "searchResEntry":
            username = r["attributes"].get("username")
            found.append(username[0] if username else r["dn"])
    return found


async def usernames(world: World, flt: str, app: str = "wiki", **kwargs: Any) -> list[str]:
    kwargs.setdefault("attributes", ["username"])
    code, response = await blocking(lambda: search(world, app, USERS, flt, **kwargs))
    assert code == 0, (flt, code)
    return [n for n in names(response) if n != USERS]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ("(username=bob)", ["bob"]),
        ("(USERNAME=BOB)", ["bob"]),
        ("(displayname=Alice Example)", ["alice"]),
        ("(displayName=alice   EXAMPLE)", ["alice"]),
        ("(givenname=carol)", ["carol"]),
        ("(sn=singer)", ["carol"]),
        ("(mail=dave@example.com)", ["dave"]),
        ("(samaccountname=dave)", ["dave"]),
        ("(objectclass=inetOrgPerson)", ["alice", "bob", "carol", "dave"]),
        ("(objectClass=user)", ["alice", "bob", "carol", "dave"]),
        ("(memberof=cn=admins,ou=groups,dc=cloudron)", ["alice"]),
        ("(memberOf=CN=Staff, OU=Groups, DC=Cloudron)", ["bob", "carol"]),
        ("(memberOf:1.2.840.113556.1.4.1941:=cn=staff,ou=groups,dc=cloudron)", ["bob", "carol"]),
        ("(username=*)", ["alice", "bob", "carol", "dave"]),
        ("(sn=*)", ["alice", "bob", "carol"]),
        ("(!(sn=*))", ["dave"]),
        ("(username=b*)", ["bob"]),
        ("(username=*o*)", ["bob", "carol"]),
        ("(displayname=*anna*)", ["carol"]),
        ("(displayname=c*anna*er)", ["carol"]),
        ("(mail=*@example.com)", ["alice", "bob", "carol", "dave"]),
        ("(username>=c)", ["carol", "dave"]),
        ("(username<=bob)", ["alice", "bob"]),
        ("(displayname~=alice-example)", ["alice"]),
        ("(&(objectclass=user)(|(username=carol)(mail=carol)))", ["carol"]),
        ("(&(objectclass=user)(|(username=bob@example.com)(mail=bob@example.com)))", ["bob"]),
        ("(|(username=alice)(username=dave))", ["alice", "dave"]),
        ("(!(username=alice))", ["bob", "carol", "dave"]),
        ("(&(username=alice)(!(memberof=cn=admins,ou=groups,dc=cloudron)))", []),
        ("(username:caseExactMatch:=BOB)", []),
        ("(username:caseIgnoreMatch:=BOB)", ["bob"]),
        ("(:caseIgnoreMatch:=dave)", ["dave"]),
        ("(cn:dn:=" + "{dave}" + ")", ["dave"]),
        ("(username:9.9.9.9:=bob)", []),  # unknown matching rule: Undefined, answered
        ("(nosuchattribute=x)", []),
        ("(!(nosuchattribute=x))", ["alice", "bob", "carol", "dave"]),
        ("(memberof=not a dn)", []),
    ],
)
async def test_filters(world: World, flt: str, expected: list[str]) -> None:
    flt = flt.replace("{dave}", world.users["dave"].id)
    assert await usernames(world, flt) == expected


async def test_access_restriction_hides_users(world: World) -> None:
    assert await usernames(world, "(objectclass=user)", app="vault") == ["alice", "bob"]
    assert await usernames(world, "(objectclass=user)", app="admins-only") == ["alice"]
    assert await usernames(world, "(username=carol)", app="vault") == []
    code, _ = await blocking(
        lambda: search(world, "vault", f"cn={world.users['carol'].id},{USERS}",
                       "(objectclass=*)", search_scope=ldap3.BASE))
    assert code == 32


async def test_scopes(world: World) -> None:
    base = await blocking(lambda: search(world, "wiki", USERS, "(objectclass=*)",
                                         search_scope=ldap3.BASE))
    assert base[0] == 0
    assert [r["dn"] for r in base[1]] == [USERS]
    one = await blocking(lambda: search(world, "wiki", "dc=cloudron", "(objectclass=*)",
                                        search_scope=ldap3.LEVEL))
    assert [r["dn"] for r in one[1]] == [USERS, "ou=groups,dc=cloudron"]
    sub = await blocking(lambda: search(world, "wiki", "dc=cloudron", "(objectclass=*)"))
    dns = [r["dn"] for r in sub[1]]
    assert dns[0] == "dc=cloudron"
    assert world.dn("dave") in dns
    assert "cn=staff,ou=groups,dc=cloudron" in dns
    assert not any("mailboxes" in dn for dn in dns)  # wiki has no email addon
    one_user = await blocking(lambda: search(world, "wiki", world.dn("bob"), "(objectclass=*)",
                                             search_scope=ldap3.BASE, attributes=["username"]))
    assert names(one_user[1]) == ["bob"]


async def test_missing_bases(world: World) -> None:
    for base in ("cn=uid-nope,ou=users,dc=cloudron", "ou=nothing,dc=cloudron",
                 "dc=elsewhere", "cn=bob,ou=users,dc=cloudron"):
        code, _ = await blocking(lambda b=base: search(world, "wiki", b, "(objectclass=*)"))
        assert code == 32, base
    app = world.apps["wiki"]
    # ldap3 tidies DNs before sending; ldapsearch sends the bytes it is given.
    done = await run("ldapsearch", "-x", "-H", app.url, "-D", app.bind_dn, "-w", app.password,
                     "-b", "not=a=dn,,")
    assert done.returncode == 34, done.stderr


async def test_attribute_selection(world: World) -> None:
    bob = world.dn("bob")

    async def attrs(requested: Any, **kwargs: Any) -> dict[str, Any]:
        code, response = await blocking(lambda: search(
            world, "wiki", bob, "(objectclass=*)", search_scope=ldap3.BASE,
            attributes=requested, **kwargs))
        assert code == 0
        return dict(response[0]["raw_attributes"])

    everything = await attrs(["*"])
    assert "username" in everything
    assert "entryDN" not in everything
    assert set(await attrs(["GIVENNAME", "Mail"])) == {"givenName", "mail"}
    assert set(await attrs(["1.1"])) == set()
    operational = await attrs(["+"])
    assert {"entryDN", "structuralObjectClass", "hasSubordinates"} <= set(operational)
    assert "username" not in operational
    both = await attrs(["*", "+"])
    assert "username" in both
    assert "entryDN" in both
    assert set(await attrs(["entrydn", "cn"])) == {"entryDN", "cn"}
    types = await attrs(["*"], types_only=True)
    assert "username" in types
    assert not types["username"]
    assert not types["mail"]


async def test_size_limit(world: World) -> None:
    code, response = await blocking(lambda: search(world, "wiki", USERS, "(objectclass=user)",
                                                   size_limit=2, attributes=["username"]))
    assert code == 4
    assert len([r for r in response if r["type"] == "searchResEntry"]) == 2


async def test_groups_scoped_to_the_app(world: World) -> None:
    code, response = await blocking(lambda: search(
        world, "vault", "ou=groups,dc=cloudron", "(objectclass=group)",
        attributes=["cn", "memberuid", "member"]))
    assert code == 0
    groups = {r["attributes"]["cn"][0]: r["attributes"] for r in response}
    bob = world.users["bob"].id
    assert sorted(groups["users"]["memberuid"]) == sorted([world.users["alice"].id, bob])
    assert groups["staff"]["memberuid"] == [bob]  # carol is in staff but not allowed in vault
    found = await blocking(lambda: search(
        world, "wiki", "ou=groups,dc=cloudron", f"(memberuid={world.users['carol'].id})",
        attributes=["cn"]))
    assert sorted(r["attributes"]["cn"][0] for r in found[1]) == ["staff", "users"]
    member = await blocking(lambda: search(
        world, "wiki", "ou=groups,dc=cloudron", f"(member={world.dn('carol')})",
        attributes=["cn"]))
    assert sorted(r["attributes"]["cn"][0] for r in member[1]) == ["staff", "users"]
    numeric = await blocking(lambda: search(
        world, "wiki", "ou=groups,dc=cloudron", "(gidnumber<=500)", attributes=["cn"]))
    assert [r["attributes"]["cn"][0] for r in numeric[1]] == ["users"]


async def test_compare(world: World) -> None:
    handle = world.apps["wiki"]

    def compare(dn: str, attribute: str, value: str) -> int:
        conn = connect(handle.server, handle.port, handle.bind_dn, handle.password)
        try:
            conn.compare(dn, attribute, value)
            return int(conn.result["result"])
        finally:
            conn.unbind()

    bob = world.users["bob"]
    assert await blocking(compare, "cn=users,ou=groups,dc=cloudron", "memberUid", bob.id) == 6
    assert await blocking(compare, "cn=admins,ou=groups,dc=cloudron", "memberuid", bob.id) == 5
    assert await blocking(compare, world.dn("bob"), "mail", "BOB@example.com") == 6
    assert await blocking(compare, world.dn("bob"), "displayname", "Bob  builder") == 6
    assert await blocking(compare, world.dn("bob"), "sn", "Nope") == 5
    assert await blocking(compare, "cn=nope,ou=groups,dc=cloudron", "cn", "nope") == 32


async def test_read_only(world: World) -> None:
    handle = world.apps["wiki"]

    def writes() -> list[int]:
        conn = connect(handle.server, handle.port, handle.bind_dn, handle.password)
        codes = []
        conn.add("cn=new,ou=users,dc=cloudron", "user", {"cn": "new"})
        codes.append(int(conn.result["result"]))
        conn.modify(world.dn("bob"), {"sn": [(ldap3.MODIFY_REPLACE, ["x"])]})
        codes.append(int(conn.result["result"]))
        conn.delete(world.dn("bob"))
        codes.append(int(conn.result["result"]))
        conn.modify_dn(world.dn("bob"), "cn=robert")
        codes.append(int(conn.result["result"]))
        conn.extend.standard.modify_password(world.dn("bob"), PASSWORD, "new")
        codes.append(int(conn.result["result"]))
        conn.unbind()
        return codes

    assert await blocking(writes) == [53, 53, 53, 53, 53]


async def test_critical_unknown_control(world: World) -> None:
    code, _ = await blocking(lambda: search(
        world, "wiki", USERS, "(objectclass=*)", controls=[("1.2.3.4.5", True, None)]))
    assert code == 12
    code, _ = await blocking(lambda: search(
        world, "wiki", USERS, "(objectclass=*)", controls=[("1.2.3.4.5", False, None)]))
    assert code == 0


async def test_mail_subtrees(world: World) -> None:
    store = world.store
    await store.mail.add_domain("example.com", receives=True)
    bob = world.users["bob"]
    await store.mail.add_mailbox("bob", "example.com", owner_id=bob.id)
    await store.mail.add_mailbox("carol", "example.com", owner_id=world.users["carol"].id)
    await store.mail.add_mailbox("team", "example.com", kind="alias", alias_target="bob")
    await store.mail.add_mailbox("all", "example.com", kind="list", members=("bob", "carol"))
    await world.add_app("webmail", addons={"ldap": {}, "email": {}})
    await world.settled()

    async def run_search(app: str, base: str, flt: str = "(objectclass=*)",
                         **kw: Any) -> tuple[int, list[Any]]:
        return await blocking(lambda: search(world, app, base, flt, attributes=["*"], **kw))

    code, response = await run_search("webmail", "domain=example.com,ou=mailboxes,dc=cloudron",
                                      search_scope=ldap3.LEVEL)
    assert code == 0
    assert [r["attributes"]["mail"][0] for r in response] == ["bob@example.com",
                                                               "carol@example.com"]
    code, response = await run_search("webmail", "cn=bob@example.com,ou=mailboxes,dc=cloudron",
                                      search_scope=ldap3.BASE)
    assert code == 0
    assert response[0]["dn"] == "cn=bob@example.com,ou=mailboxes,dc=cloudron"
    assert response[0]["attributes"]["objectclass"] == ["mailbox"]
    code, _ = await run_search("webmail", "cn=team@example.com,ou=mailboxes,dc=cloudron")
    assert code == 32  # an alias is not a mailbox
    code, response = await run_search("webmail", "cn=team@example.com,ou=mailaliases,dc=cloudron")
    assert code == 0
    assert response[0]["attributes"]["rfc822MailMember"] == ["bob@example.com"]
    code, response = await run_search("webmail", "cn=all@example.com,ou=mailinglists,dc=cloudron")
    assert code == 0
    assert response[0]["attributes"]["mgrpRFC822MailMember"] == ["bob@example.com",
                                                                  "carol@example.com"]
    code, _ = await run_search("wiki", "domain=example.com,ou=mailboxes,dc=cloudron")
    assert code == 50  # apps without the email addon may not read mail


async def test_whoami_after_user_bind(world: World) -> None:
    handle = world.apps["wiki"]

    def who() -> str:
        conn = connect(handle.server, handle.port, "cn=bob@example.com,ou=users,dc=cloudron",
                       PASSWORD)
        try:
            return str(conn.extend.standard.who_am_i())
        finally:
            conn.unbind()

    assert await blocking(who) == "dn:cn=bob@example.com,ou=users,dc=cloudron"


# -- paging through 1 000 users ------------------------------------------------------------

async def add_many(store: Store, count: int, password_hash: str) -> None:
    for n in range(count):
        await store.users.add(username=f"user{n:04d}", email=f"user{n:04d}@example.com",
                              password_hash=password_hash, display_name=f"User {n}")


async def test_paging_through_1000_users(sqlite_store: Store, tmp_path: Path) -> None:
    world = await start_world(sqlite_store, tmp_path)
    try:
        hashed = await world.portal.verifier.hasher.hash(PASSWORD)
        await add_many(sqlite_store, 1000, hashed)
        app = await world.add_app("big")

        def page_all() -> tuple[list[str], int]:
            conn = connect(app.server, app.port, app.bind_dn, app.password)
            seen: list[str] = []
            pages = 0
            cookie: Any = None
            while True:
                conn.search(USERS, "(objectclass=user)", attributes=["username"],
                            paged_size=137, paged_cookie=cookie)
                assert conn.result["result"] == 0
                pages += 1
                seen.extend(e["attributes"]["username"][0] for e in conn.response)
                cookie = conn.result["controls"]["1.2.840.113556.1.4.319"]["value"]["cookie"]
                if not cookie:
                    break
                assert pages < 20
            conn.unbind()
            return seen, pages

        seen, pages = await blocking(page_all)
        assert pages == 8
        assert seen == [f"user{n:04d}" for n in range(1000)]

        def generator_pages() -> int:
            conn = connect(app.server, app.port, app.bind_dn, app.password)
            entries = list(conn.extend.standard.paged_search(
                USERS, "(username=user01*)", attributes=["username"], paged_size=25,
                generator=True))
            conn.unbind()
            return len(entries)

        assert await blocking(generator_pages) == 100

        def bad_cookie() -> int:
            conn = connect(app.server, app.port, app.bind_dn, app.password)
            try:
                conn.search(USERS, "(objectclass=user)", paged_size=10, paged_cookie=b"forged")
                return int(conn.result["result"])
            except LDAPException:
                return -1
            finally:
                conn.unbind()

        assert await blocking(bad_cookie) == 53
    finally:
        await world.server.stop(1.0)
        await world.audit.close()
