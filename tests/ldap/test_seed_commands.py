"""The documented debug commands (seed 000, section LDAP), verbatim, with the environment
an app is given, through OpenLDAP's own ldapsearch; plus ldapwhoami and ldapcompare."""

from __future__ import annotations

from tests.ldap.clients import ldif_entries, run, shell
from tests.ldap.world import PASSWORD, World

# Verbatim from the Cloudron addon documentation (seed 000_*.txt, "To debug").
LIST_USERS = (
    'ldapsearch -x -H "${CLOUDRON_LDAP_URL}" -D "${CLOUDRON_LDAP_BIND_DN}" '
    '-w "${CLOUDRON_LDAP_BIND_PASSWORD}" -b "${CLOUDRON_LDAP_USERS_BASE_DN}"'
)
LIST_USERS_AS_USER = (
    'ldapsearch -x -H "${CLOUDRON_LDAP_URL}" -D cn=<username>,${CLOUDRON_LDAP_USERS_BASE_DN} '
    '-w <password> -b "${CLOUDRON_LDAP_USERS_BASE_DN}"'
)
LIST_GROUPS = (
    'ldapsearch -x -H "${CLOUDRON_LDAP_URL}" -D "${CLOUDRON_LDAP_BIND_DN}" '
    '-w "${CLOUDRON_LDAP_BIND_PASSWORD}" -b "${CLOUDRON_LDAP_GROUPS_BASE_DN}"'
)


def people(output: str) -> dict[str, dict[str, list[str]]]:
    return {e["username"][0]: e for e in ldif_entries(output) if "username" in e}


async def test_list_users_with_the_app_bind(world: World) -> None:
    done = await shell(LIST_USERS, world.apps["wiki"].env())
    assert done.returncode == 0, done.stderr
    found = people(done.stdout)
    assert set(found) == {"alice", "bob", "carol", "dave"}
    alice = found["alice"]
    assert alice["dn"] == [world.dn("alice")]
    assert alice["objectclass"] == ["user", "inetorgperson", "person"]
    assert alice["uid"] == alice["entryuuid"] == alice["cn"] == [world.users["alice"].id]
    assert alice["mail"] == ["alice@example.com"]
    assert alice["displayname"] == ["Alice Example"]
    assert alice["givenName"] == ["Alice"]
    assert alice["sn"] == ["Example"]
    assert alice["samaccountname"] == ["alice"]
    assert alice["memberof"] == ["cn=users,ou=groups,dc=cloudron",
                                 "cn=admins,ou=groups,dc=cloudron"]
    assert "sn" not in found["dave"]
    assert found["dave"]["displayname"] == ["dave"]
    # The OU entry itself leads the subtree answer, as slapd's would.
    assert ldif_entries(done.stdout)[0]["dn"] == ["ou=users,dc=cloudron"]


async def test_list_users_bound_as_a_user(world: World) -> None:
    command = LIST_USERS_AS_USER.replace("<username>", "bob").replace("<password>",
                                                                       f"'{PASSWORD}'")
    done = await shell(command, world.apps["vault"].env())
    assert done.returncode == 0, done.stderr
    # vault is restricted to bob: admins and bob are listed, nobody else.
    assert set(people(done.stdout)) == {"alice", "bob"}
    assert "matched DN" not in done.stderr


async def test_list_users_wrong_password(world: World) -> None:
    command = LIST_USERS_AS_USER.replace("<username>", "bob").replace("<password>", "nope")
    done = await shell(command, world.apps["wiki"].env())
    assert done.returncode == 49
    assert "Invalid credentials (49)" in done.stderr


async def test_list_groups(world: World) -> None:
    done = await shell(LIST_GROUPS, world.apps["staffapp"].env())
    assert done.returncode == 0, done.stderr
    groups = {e["cn"][0]: e for e in ldif_entries(done.stdout) if "cn" in e}
    assert set(groups) == {"users", "admins", "staff"}
    ids = world.users
    # staffapp admits the staff group (and admins always): dave is not listed anywhere.
    assert sorted(groups["users"]["memberuid"]) == sorted(
        [ids["alice"].id, ids["bob"].id, ids["carol"].id])
    assert groups["admins"]["memberuid"] == [ids["alice"].id]
    assert groups["staff"]["objectclass"] == ["group", "groupofnames"]
    assert sorted(groups["staff"]["member"]) == sorted([world.dn("bob"), world.dn("carol")])
    assert groups["users"]["gidnumber"] == ["500"]


async def test_suggested_filter(world: World) -> None:
    env = world.apps["wiki"].env()
    for login in ("carol", "carol@example.com", "CAROL"):
        flt = f"(&(objectclass=user)(|(username={login})(mail={login})))"
        done = await shell(LIST_USERS + f" '{flt}' dn", env)
        assert done.returncode == 0, done.stderr
        assert [e["dn"] for e in ldif_entries(done.stdout)] == [[world.dn("carol")]]


async def test_ldapwhoami(world: World) -> None:
    app = world.apps["wiki"]
    done = await run("ldapwhoami", "-x", "-H", app.url, "-D", "cn=dave,ou=users,dc=cloudron",
                     "-w", PASSWORD)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "dn:cn=dave,ou=users,dc=cloudron"
    anonymous = await run("ldapwhoami", "-x", "-H", app.url)
    assert anonymous.returncode == 0
    assert anonymous.stdout.strip() == "anonymous"


async def test_ldapcompare_memberuid(world: World) -> None:
    app = world.apps["wiki"]
    common = ["-x", "-H", app.url, "-D", app.bind_dn, "-w", app.password]
    yes = await run("ldapcompare", *common, "cn=admins,ou=groups,dc=cloudron",
                    f"memberUid:{world.users['alice'].id}")
    assert yes.returncode == 6
    assert "TRUE" in yes.stdout
    no = await run("ldapcompare", *common, "cn=admins,ou=groups,dc=cloudron",
                   f"memberUid:{world.users['bob'].id}")
    assert no.returncode == 5
    assert "FALSE" in no.stdout
    missing = await run("ldapcompare", *common, "cn=nobody,ou=groups,dc=cloudron",
                        "memberUid:x")
    assert missing.returncode == 32


async def test_root_dse(world: World) -> None:
    done = await run("ldapsearch", "-x", "-H", world.url, "-s", "base", "-b", "", "+", "*")
    assert done.returncode == 0, done.stderr
    (root,) = ldif_entries(done.stdout)
    assert root["namingContexts"] == ["dc=cloudron"]
    assert root["supportedLDAPVersion"] == ["3"]
    assert "1.2.840.113556.1.4.319" in root["supportedControl"]


async def test_unidentified_client_is_refused_people(world: World) -> None:
    done = await run("ldapsearch", "-x", "-H", world.url, "-b", "ou=users,dc=cloudron")
    assert done.returncode == 50, done.stderr
    assert "result: 50 Insufficient access" in done.stdout
