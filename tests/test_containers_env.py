"""The environment apps get, and the install/configure/uninstall rules behind it.

The first tests are a table against the seed (docs.cloudron.io/packaging/addons, the list
under "Exported environment variables" of each addon): every variable listed there for
ldap, sendmail, recvmail and email is produced with the documented name, and each row says
which addon option (or platform condition) makes it appear. Everything runs on SQLite and
PostgreSQL (the ``store`` fixture).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Config, RuntimeConfig
from gateway.config.containers import ContainersConfig
from gateway.containers.environment import app_environment
from gateway.containers.errors import InstallError, SsoFixed
from gateway.containers.files import AppFiles
from gateway.containers.installer import AppInstaller, InstallRequest, Reconfiguration
from gateway.containers.manifest import parse_manifest
from gateway.containers.provisioner import AddonProvisioner
from gateway.containers.routing import route_for
from gateway.store import Change, Conflict, Store, migrations, open_store
from gateway.store.models import App, AppLaunch

DOMAIN = "example.com"
HEX48 = re.compile(r"^[0-9a-f]{48}$")
HEX128 = re.compile(r"^[0-9a-f]{128}$")
LOCAL = AppLaunch("local", command=("/bin/true",))

# The seed's lists, verbatim and in its order.
SEED: dict[str, tuple[str, ...]] = {
    "ldap": (
        "CLOUDRON_LDAP_SERVER", "CLOUDRON_LDAP_HOST", "CLOUDRON_LDAP_PORT", "CLOUDRON_LDAP_URL",
        "CLOUDRON_LDAP_USERS_BASE_DN", "CLOUDRON_LDAP_GROUPS_BASE_DN", "CLOUDRON_LDAP_BIND_DN",
        "CLOUDRON_LDAP_BIND_PASSWORD",
    ),
    "sendmail": (
        "CLOUDRON_MAIL_SMTP_SERVER", "CLOUDRON_MAIL_SMTP_PORT", "CLOUDRON_MAIL_SMTPS_PORT",
        "CLOUDRON_MAIL_SMTP_USERNAME", "CLOUDRON_MAIL_SMTP_PASSWORD", "CLOUDRON_MAIL_FROM",
        "CLOUDRON_MAIL_FROM_DISPLAY_NAME", "CLOUDRON_MAIL_DOMAIN",
    ),
    "recvmail": (
        "CLOUDRON_MAIL_IMAP_SERVER", "CLOUDRON_MAIL_IMAP_PORT", "CLOUDRON_MAIL_IMAPS_PORT",
        "CLOUDRON_MAIL_POP3_PORT", "CLOUDRON_MAIL_POP3S_PORT", "CLOUDRON_MAIL_IMAP_USERNAME",
        "CLOUDRON_MAIL_IMAP_PASSWORD", "CLOUDRON_MAIL_TO", "CLOUDRON_MAIL_TO_DOMAIN",
    ),
    "email": (
        "CLOUDRON_EMAIL_SMTP_SERVER", "CLOUDRON_EMAIL_SMTP_PORT", "CLOUDRON_EMAIL_SMTPS_PORT",
        "CLOUDRON_EMAIL_STARTTLS_PORT", "CLOUDRON_EMAIL_IMAP_SERVER", "CLOUDRON_EMAIL_IMAP_PORT",
        "CLOUDRON_EMAIL_IMAPS_PORT", "CLOUDRON_EMAIL_SIEVE_SERVER", "CLOUDRON_EMAIL_SIEVE_PORT",
        "CLOUDRON_EMAIL_DOMAIN", "CLOUDRON_EMAIL_DOMAINS", "CLOUDRON_EMAIL_SERVER_HOST",
    ),
}
# Every app, whatever its addons (F.2, seed 003).
STANDARD = {
    "CLOUDRON", "CLOUDRON_PROXY_IP", "CLOUDRON_APP_HOSTNAME", "CLOUDRON_ADMIN_EMAIL",
    "CLOUDRON_WEBADMIN_ORIGIN", "CLOUDRON_API_ORIGIN", "CLOUDRON_APP_ORIGIN",
    "CLOUDRON_APP_DOMAIN",
}


def without(names: tuple[str, ...], *dropped: str) -> set[str]:
    return set(names) - set(dropped)


@dataclass(frozen=True)
class Case:
    """One row: an addon with options, a platform condition, the variables that appear."""

    label: str
    addon: str
    options: Mapping[str, Any]
    expected: set[str]
    receiving_domain: bool = False
    # Beyond the seed: variables Cloudron 2019 also set (reference C.1), kept for old apps.
    extras: set[str] = field(default_factory=set)


CASES = [
    Case("ldap: all eight", "ldap", {}, set(SEED["ldap"])),
    Case("sendmail: all but the display name", "sendmail", {},
         without(SEED["sendmail"], "CLOUDRON_MAIL_FROM_DISPLAY_NAME")),
    Case("sendmail supportsDisplayName: adds the display name", "sendmail",
         {"supportsDisplayName": True}, set(SEED["sendmail"])),
    Case("sendmail requiresValidCertificate: same names", "sendmail",
         {"requiresValidCertificate": True},
         without(SEED["sendmail"], "CLOUDRON_MAIL_FROM_DISPLAY_NAME")),
    Case("sendmail optional: none at all", "sendmail", {"optional": True}, set()),
    Case("recvmail, domain receives mail: all nine", "recvmail", {}, set(SEED["recvmail"]),
         receiving_domain=True, extras={"CLOUDRON_MAIL_DOMAIN"}),
    Case("recvmail, domain receives no mail: none", "recvmail", {}, set()),
    Case("email: all twelve", "email", {}, set(SEED["email"]), receiving_domain=True,
         extras={"CLOUDRON_LDAP_MAILBOXES_BASE_DN"}),
    Case("proxyAuth: none (a wall rule instead)", "proxyAuth", {"path": "/admin"}, set()),
    Case("localstorage: none (a data directory instead)", "localstorage", {}, set()),
]


def config_for(tmp_path: Path, **containers: Any) -> Config:
    return Config(
        runtime=RuntimeConfig(data_dir=tmp_path / "data"),
        containers=ContainersConfig(**containers),
    )


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return config_for(tmp_path)


def manifest_data(addons: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "io.example.wiki", "title": "Wiki", "version": "1.0.0", "manifestVersion": 2,
        "httpPort": 8000, "healthCheckPath": "/", "addons": dict(addons), **extra,
    }


async def install(store: Store, config: Config, addons: Mapping[str, Any], *,
                  location: str = "wiki", launch: AppLaunch = LOCAL, **extra: Any) -> App:
    request_fields = {k: extra.pop(k) for k in ("sso", "mailbox", "upstream") if k in extra}
    return await AppInstaller(store, config).install(
        InstallRequest(
            manifest=parse_manifest(manifest_data(addons, **extra)), location=location,
            domain=DOMAIN, launch=launch, **request_fields,
        )
    )


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
async def test_seed_variables_per_addon_option(store: Store, config: Config, case: Case) -> None:
    if case.receiving_domain:
        await store.mail.add_domain(DOMAIN, receives=True)
    app = await install(store, config, {case.addon: case.options})
    env = await app_environment(store, config, app)
    assert set(env) == STANDARD | case.expected | case.extras
    for name in case.expected | case.extras:
        assert env[name], name


def test_the_table_covers_every_seed_variable() -> None:
    produced = set().union(*(case.expected for case in CASES))
    listed = set().union(*SEED.values())
    assert listed <= produced, sorted(listed - produced)


async def test_seed_variable_values(store: Store, config: Config) -> None:
    await store.mail.add_domain(DOMAIN, receives=True)
    await store.mail.add_domain("example.org", receives=True)
    await store.mail.add_domain("example.net")  # sends only
    app = await install(store, config, {
        "ldap": {}, "sendmail": {"supportsDisplayName": True}, "recvmail": {}, "email": {},
    })
    env = await app_environment(store, config, app)
    creds = await store.apps.all_credentials(app.id)
    server = creds["ldap"]["server"]
    address = "wiki.app@example.com"
    expected: dict[str, str | Callable[[str], bool]] = {
        "CLOUDRON": "1",
        "CLOUDRON_PROXY_IP": "127.0.0.1",
        "CLOUDRON_APP_HOSTNAME": app.id,
        "CLOUDRON_ADMIN_EMAIL": "admin@localhost",
        "CLOUDRON_WEBADMIN_ORIGIN": "https://my.localhost",
        "CLOUDRON_API_ORIGIN": "https://my.localhost",
        "CLOUDRON_APP_ORIGIN": "https://wiki.example.com",
        "CLOUDRON_APP_DOMAIN": "wiki.example.com",
        "CLOUDRON_LDAP_SERVER": server,
        "CLOUDRON_LDAP_HOST": server,
        "CLOUDRON_LDAP_PORT": "3002",
        "CLOUDRON_LDAP_URL": f"ldap://{server}:3002",
        "CLOUDRON_LDAP_USERS_BASE_DN": "ou=users,dc=cloudron",
        "CLOUDRON_LDAP_GROUPS_BASE_DN": "ou=groups,dc=cloudron",
        "CLOUDRON_LDAP_BIND_DN": f"cn={app.id},ou=apps,dc=cloudron",
        "CLOUDRON_LDAP_BIND_PASSWORD": creds["ldap"]["password"],
        "CLOUDRON_MAIL_SMTP_SERVER": "127.0.0.1",
        "CLOUDRON_MAIL_SMTP_PORT": "2525",
        "CLOUDRON_MAIL_SMTPS_PORT": "2465",
        "CLOUDRON_MAIL_SMTP_USERNAME": address,
        "CLOUDRON_MAIL_SMTP_PASSWORD": creds["sendmail"]["password"],
        "CLOUDRON_MAIL_FROM": address,
        "CLOUDRON_MAIL_FROM_DISPLAY_NAME": "Wiki",
        "CLOUDRON_MAIL_DOMAIN": DOMAIN,
        "CLOUDRON_MAIL_IMAP_SERVER": "127.0.0.1",
        "CLOUDRON_MAIL_IMAP_PORT": "9143",
        "CLOUDRON_MAIL_IMAPS_PORT": "9993",
        "CLOUDRON_MAIL_POP3_PORT": "9110",
        "CLOUDRON_MAIL_POP3S_PORT": "9995",
        "CLOUDRON_MAIL_IMAP_USERNAME": address,
        "CLOUDRON_MAIL_IMAP_PASSWORD": creds["recvmail"]["password"],
        "CLOUDRON_MAIL_TO": address,
        "CLOUDRON_MAIL_TO_DOMAIN": DOMAIN,
        "CLOUDRON_EMAIL_SMTP_SERVER": "127.0.0.1",
        "CLOUDRON_EMAIL_SMTP_PORT": "2525",
        "CLOUDRON_EMAIL_SMTPS_PORT": "2465",
        "CLOUDRON_EMAIL_STARTTLS_PORT": "2587",
        "CLOUDRON_EMAIL_IMAP_SERVER": "127.0.0.1",
        "CLOUDRON_EMAIL_IMAP_PORT": "9143",
        "CLOUDRON_EMAIL_IMAPS_PORT": "9993",
        "CLOUDRON_EMAIL_SIEVE_SERVER": "127.0.0.1",
        "CLOUDRON_EMAIL_SIEVE_PORT": "4190",
        "CLOUDRON_EMAIL_DOMAIN": DOMAIN,
        "CLOUDRON_EMAIL_DOMAINS": "example.com,example.org",
        "CLOUDRON_EMAIL_SERVER_HOST": "mail.localhost",
        "CLOUDRON_LDAP_MAILBOXES_BASE_DN": "ou=mailboxes,dc=cloudron",
    }
    assert env == expected
    assert server.startswith("127.0.1.")
    assert HEX128.match(env["CLOUDRON_LDAP_BIND_PASSWORD"])
    assert HEX48.match(env["CLOUDRON_MAIL_SMTP_PASSWORD"])
    assert HEX48.match(env["CLOUDRON_MAIL_IMAP_PASSWORD"])
    assert env["CLOUDRON_MAIL_SMTP_PASSWORD"] != env["CLOUDRON_MAIL_IMAP_PASSWORD"]


async def test_manifest_version_1_gets_bare_names(store: Store, config: Config) -> None:
    app = await install(store, config, {"ldap": {}, "sendmail": {}}, manifestVersion=1)
    env = await app_environment(store, config, app)
    bare = {name.removeprefix("CLOUDRON_") for name in SEED["ldap"]} | {
        name.removeprefix("CLOUDRON_")
        for name in without(SEED["sendmail"], "CLOUDRON_MAIL_FROM_DISPLAY_NAME")
    }
    # These four carry the prefix whatever the version (F.2).
    always = {"CLOUDRON", "CLOUDRON_PROXY_IP", "CLOUDRON_APP_HOSTNAME", "CLOUDRON_ADMIN_EMAIL"}
    origins = {"WEBADMIN_ORIGIN", "API_ORIGIN", "APP_ORIGIN", "APP_DOMAIN"}
    assert set(env) == always | origins | bare


async def test_requires_valid_certificate_names_the_mail_fqdn(store: Store, tmp_path: Path) -> None:
    config = config_for(tmp_path, mail_server_host="mail.example.com", mail_server="10.0.0.5")
    app = await install(store, config, {"sendmail": {"requiresValidCertificate": True}})
    env = await app_environment(store, config, app)
    assert env["CLOUDRON_MAIL_SMTP_SERVER"] == "mail.example.com"
    plain = await install(store, config, {"sendmail": {}}, location="blog")
    assert (await app_environment(store, config, plain))["CLOUDRON_MAIL_SMTP_SERVER"] == "10.0.0.5"


async def test_ports_from_the_manifest_are_in_the_env(store: Store, config: Config) -> None:
    app = await install(store, config, {}, tcpPorts={"SSH_PORT": {"defaultValue": 29418,
                                                                  "containerPort": 22}})
    assert (await app_environment(store, config, app))["SSH_PORT"] == "29418"


# -- credentials ---------------------------------------------------------------------------


async def test_credentials_keep_the_contract(store: Store, config: Config) -> None:
    app = await install(store, config, {"ldap": {}, "sendmail": {}, "recvmail": {}},
                        location="Wiki")
    creds = await store.apps.all_credentials(app.id)
    assert set(creds["ldap"]) == {"bind_dn", "password", "server", "port"}
    assert creds["ldap"]["bind_dn"] == f"cn={app.id},ou=apps,dc=cloudron"
    assert creds["ldap"]["port"] == "3002"
    assert creds["sendmail"]["username"] == "wiki.app@example.com"
    assert HEX48.match(creds["sendmail"]["password"])
    assert creds["recvmail"]["username"] == "wiki.app@example.com"
    assert creds["recvmail"]["password"] != creds["sendmail"]["password"]
    assert await store.apps.find_by_credential("sendmail", "username",
                                               "wiki.app@example.com") == app.id


async def test_setup_again_changes_and_announces_nothing(store: Store, config: Config) -> None:
    app = await install(store, config, {"ldap": {}, "sendmail": {}, "recvmail": {},
                                        "localstorage": {}})
    before = await store.apps.all_credentials(app.id)
    heard: list[Change] = []
    unsubscribe = store.changes.subscribe(heard.append)
    try:
        runtime = await store.apps.runtime(app.id)
        assert runtime is not None
        manifest = parse_manifest(app.manifest)
        for _ in range(3):  # as before every start
            await AddonProvisioner(store, config).setup(app, manifest, runtime.launch)
    finally:
        unsubscribe()
    assert await store.apps.all_credentials(app.id) == before
    assert heard == []
    assert AppFiles.of(config, app.id).data.is_dir()


async def test_each_local_app_gets_its_own_ldap_address(store: Store, config: Config) -> None:
    apps = [await install(store, config, {"ldap": {}}, location=f"app{i}") for i in range(3)]
    servers = [(await store.apps.credentials(a.id, "ldap"))["server"] for a in apps]
    assert servers == ["127.0.1.1", "127.0.1.2", "127.0.1.3"]
    # The store refuses a second app on the same address, whoever races for it.
    taken = await store.apps.credentials(apps[0].id, "ldap")
    with pytest.raises(Conflict):
        await store.apps.set_credentials(apps[1].id, "ldap", taken)
    # A freed address is handed out again.
    await AppInstaller(store, config).uninstall(apps[1])
    again = await install(store, config, {"ldap": {}}, location="again")
    assert (await store.apps.credentials(again.id, "ldap"))["server"] == "127.0.1.2"


async def test_bridge_containers_use_the_bridge_ldap_server(store: Store, tmp_path: Path) -> None:
    config = config_for(tmp_path, backend="docker", docker_network="apps",
                        ldap_server="172.18.0.1")
    app = await install(store, config, {"ldap": {}},
                        launch=AppLaunch("docker", image="example/wiki:1"))
    assert "server" not in await store.apps.credentials(app.id, "ldap")
    env = await app_environment(store, config, app)
    assert env["CLOUDRON_LDAP_URL"] == "ldap://172.18.0.1:3002"
    assert app.upstream is None  # learnt when the container has an address
    host = config_for(tmp_path, backend="docker")
    other = await install(store, host, {"ldap": {}}, location="blog",
                          launch=AppLaunch("docker", image="example/wiki:1"))
    assert (await store.apps.credentials(other.id, "ldap"))["server"].startswith("127.0.1.")
    assert other.upstream == "http://127.0.0.1:8000"


# -- sso, configure, uninstall ----------------------------------------------------------------


async def test_sso_addons_cannot_be_added_later(store: Store, config: Config) -> None:
    app = await install(store, config, {"sendmail": {}})
    installer = AppInstaller(store, config)
    for addon in ("ldap", "proxyAuth"):
        with pytest.raises(SsoFixed, match=f"the {addon} addon cannot be added"):
            await installer.configure(app, Reconfiguration(
                manifest=parse_manifest(manifest_data({"sendmail": {}, addon: {}}))
            ))
    assert set((await store.apps.get(app.id)).manifest["addons"]) == {"sendmail"}
    # Dropping an addon tears its credentials down.
    await installer.configure(app, Reconfiguration(manifest=parse_manifest(manifest_data({}))))
    assert await store.apps.all_credentials(app.id) == {}


async def test_install_without_sso_needs_optional_sso(store: Store, config: Config) -> None:
    with pytest.raises(InstallError, match="optionalSso"):
        await install(store, config, {"ldap": {}}, sso=False)
    app = await install(store, config, {"ldap": {}, "proxyAuth": {}}, sso=False,
                        optionalSso=True)
    assert app.sso is False
    env = await app_environment(store, config, app)
    assert not [name for name in env if "LDAP" in name]
    assert await store.apps.all_credentials(app.id) == {}
    runtime = await store.apps.runtime(app.id)
    assert route_for(app, parse_manifest(app.manifest), runtime).wall is None


async def test_moving_an_app_moves_its_platform_named_mailbox(
    store: Store, config: Config
) -> None:
    await store.mail.add_domain(DOMAIN, receives=True)
    installer = AppInstaller(store, config)
    app = await install(store, config, {"sendmail": {}, "recvmail": {}})
    password = (await store.apps.credentials(app.id, "sendmail"))["password"]
    assert (await store.mail.mailbox("wiki.app@example.com")).owner_id == app.id

    app = await installer.configure(app, Reconfiguration(location="docs"))
    creds = await store.apps.all_credentials(app.id)
    assert creds["sendmail"] == {"username": "docs.app@example.com", "password": password}
    assert creds["recvmail"]["username"] == "docs.app@example.com"
    assert [m.address for m in await store.mail.owned_by(app.id)] == ["docs.app@example.com"]

    # A name the admin chose stays when the app moves again.
    app = await installer.configure(app, Reconfiguration(mailbox="Team"))
    app = await installer.configure(app, Reconfiguration(location="kb"))
    assert (await store.apps.credentials(app.id, "sendmail"))["username"] == "team@example.com"


async def test_mail_names_are_not_shared(store: Store, config: Config) -> None:
    await store.mail.add_domain(DOMAIN, receives=True)
    user = await store.users.add(username="bob", email="bob@example.com", password_hash="x")
    await store.mail.add_mailbox("bob", DOMAIN, owner_id=user.id)
    with pytest.raises(InstallError, match="already a mailbox"):
        await install(store, config, {"sendmail": {}}, mailbox="bob")
    first = await install(store, config, {"sendmail": {}}, mailbox="news")
    with pytest.raises(InstallError, match=f"mail address of app {first.id}"):
        await install(store, config, {"recvmail": {}}, mailbox="news", location="other")
    assert [a.id for a in await store.apps.list()] == [first.id]  # nothing left half-made


async def test_uninstall_removes_what_belongs_to_the_app(store: Store, config: Config) -> None:
    await store.mail.add_domain(DOMAIN, receives=True)
    app = await install(store, config, {"ldap": {}, "sendmail": {}, "recvmail": {},
                                        "localstorage": {}})
    keep = await install(store, config, {"sendmail": {}}, location="blog")
    user = await store.users.add(username="alice", email="alice@example.com", password_hash="x")
    await store.sessions.put("cookie", user_id=user.id, app_id=app.id, expires_at=2e9)
    await store.app_passwords.add(user.id, "phone", app.id, "hash")
    mail_password = await store.app_passwords.add(user.id, "laptop", "mail", "hash")
    files = AppFiles.of(config, app.id)
    assert files.data.is_dir()

    await AppInstaller(store, config).uninstall(app)
    assert await store.apps.all_credentials(app.id) == {}
    assert await store.apps.runtime(app.id) is None
    assert await store.sessions.get("cookie") is None
    assert await store.app_passwords.of_user(user.id) == [mail_password]
    assert await store.mail.owned_by(app.id) == []
    assert not files.root.exists()
    assert await store.apps.credentials(keep.id, "sendmail")


async def test_launch_must_fit_the_backend(store: Store, tmp_path: Path) -> None:
    local = config_for(tmp_path)
    with pytest.raises(InstallError, match="local backend"):
        await install(store, local, {}, launch=AppLaunch("docker", image="x/y:1"))
    with pytest.raises(InstallError, match="needs --upstream"):
        await install(store, local, {}, launch=AppLaunch("external"))
    with pytest.raises(InstallError, match="expected http"):
        await install(store, local, {}, launch=AppLaunch("external"), upstream="ftp://x")
    app = await install(store, local, {}, launch=AppLaunch("external"),
                        upstream="http://127.0.0.1:9000")
    assert app.upstream == "http://127.0.0.1:9000"
    runtime = await store.apps.runtime(app.id)
    assert runtime is not None
    assert runtime.state == "external"
    docker = config_for(tmp_path, backend="docker")
    with pytest.raises(InstallError, match="needs --image"):
        await install(store, docker, {}, launch=AppLaunch("docker"), location="x")


# -- the runtime rows -----------------------------------------------------------------------


async def test_apps_from_before_the_runtime_table_become_external(
    store_url: str, tmp_path: Path
) -> None:
    store = await open_store(store_url, data_dir=tmp_path, migrate=False)
    try:
        (first, name, sql), *_ = migrations.available()
        async with store.db.migration() as tx:
            await tx.execute(migrations.CREATE_HISTORY)
            await tx.script(migrations.render(sql, store.dialect))
            await tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                *migrations.history_row(first, name),
            )
        old = await store.apps.add(location="old", domain=DOMAIN, manifest={},
                                   upstream="http://127.0.0.1:9000")
        assert 2 in await store.migrate()
        runtime = await store.apps.runtime(old.id)
        assert runtime is not None
        assert (runtime.launch.backend, runtime.state) == ("external", "external")
    finally:
        await store.close()


async def test_runtime_decisions_are_announced_observations_are_not(
    store: Store, config: Config
) -> None:
    app = await install(store, config, {})
    heard: list[Change] = []
    unsubscribe = store.changes.subscribe(heard.append)
    try:
        assert await store.apps.record_runtime(app.id, state="running", health="healthy",
                                               container_id="pid:1")
        assert heard == []
        assert await store.apps.request_restart(app.id) == 1
        await store.apps.set_launch(app.id, replace(LOCAL, command=("/bin/false",)))
        assert heard == [Change("app", app.id)] * 2
    finally:
        unsubscribe()
    runtime = await store.apps.runtime(app.id)
    assert runtime is not None
    assert (runtime.state, runtime.health, runtime.container_id, runtime.generation) == (
        "running", "healthy", "pid:1", 1
    )
    assert runtime.launch.command == ("/bin/false",)
    assert set(await store.apps.runtimes()) == {app.id}
    assert not await store.apps.record_runtime("no-such-app", state="running")
