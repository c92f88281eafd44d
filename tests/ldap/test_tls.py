"""StartTLS and LDAPS with a generated self-signed certificate; directory-server mode."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import ldap3
import pytest

from gateway.config import ListenAddress, Secret
from gateway.store import Store
from ldap.tls import generate_self_signed
from tests.ldap.clients import blocking, connect, ldif_entries, run
from tests.ldap.conftest import populate
from tests.ldap.world import PASSWORD, World, start_world


@pytest.fixture
async def tls_world(sqlite_store: Store, tmp_path: Path) -> AsyncIterator[World]:
    cert, key = tmp_path / "ldap.crt", tmp_path / "ldap.key"
    generate_self_signed(cert, key, hostnames=["localhost"], addresses=["127.0.0.1"])
    world = await start_world(
        sqlite_store, tmp_path, tls_cert=cert, tls_key=key,
        listen_ldaps=[ListenAddress("127.0.0.1", 0)],
        directory_server=True, directory_secret=Secret("directory-secret"),
        directory_allowlist=["127.0.0.0/8"],
    )
    try:
        yield await populate(world)
    finally:
        await world.server.stop(1.0)
        await world.audit.close()


def tls_settings(cert: Path) -> ldap3.Tls:
    return ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(cert))


async def test_key_file_is_private(tmp_path: Path) -> None:
    generate_self_signed(tmp_path / "c.pem", tmp_path / "k.pem")
    assert (tmp_path / "k.pem").stat().st_mode & 0o077 == 0
    assert b"BEGIN CERTIFICATE" in (tmp_path / "c.pem").read_bytes()


async def test_starttls_with_ldap3(tls_world: World, tmp_path: Path) -> None:
    app = tls_world.apps["wiki"]
    cert = tmp_path / "ldap.crt"

    def flow() -> tuple[bool, int, list[str]]:
        server = ldap3.Server(app.server, port=app.port, tls=ldap3.Tls(validate=ssl.CERT_NONE))
        conn = ldap3.Connection(server, "cn=bob,ou=users,dc=cloudron", PASSWORD,
                                raise_exceptions=False)
        conn.open()
        started = conn.start_tls()
        conn.bind()
        code = int(conn.result["result"])
        conn.search("ou=users,dc=cloudron", "(username=carol)", attributes=["mail"])
        mails = [e["attributes"]["mail"][0] for e in conn.response]
        conn.unbind()
        return started, code, mails

    assert await blocking(flow) == (True, 0, ["carol@example.com"])
    done = await run("ldapsearch", "-x", "-ZZ", "-H", f"ldap://127.0.0.1:{app.port}",
                     "-s", "base", "-b", "", "supportedExtension",
                     env={"LDAPTLS_CACERT": str(cert), "LDAPTLS_REQCERT": "demand"})
    assert done.returncode == 0, done.stderr
    (root,) = ldif_entries(done.stdout)
    assert "1.3.6.1.4.1.1466.20037" in root["supportedExtension"]


async def test_ldaps(tls_world: World, tmp_path: Path) -> None:
    host, port = tls_world.server.addresses[1]

    def flow() -> int:
        server = ldap3.Server(host, port=port, use_ssl=True,
                              tls=tls_settings(tmp_path / "ldap.crt"))
        conn = ldap3.Connection(server, "cn=admin,ou=system,dc=cloudron", "directory-secret",
                                raise_exceptions=False)
        conn.open()
        conn.bind()
        assert conn.result["result"] == 0, conn.result
        conn.search("ou=users,dc=cloudron", "(objectclass=user)", attributes=["username"])
        found = len(conn.response)
        conn.unbind()
        return found

    # The directory-server admin sees every listed user, whatever the apps' restrictions.
    assert await blocking(flow) == 4


async def test_directory_admin_needs_tls_and_the_secret(tls_world: World) -> None:
    def bind(password: str) -> int:
        conn = connect(tls_world.host, tls_world.port)
        conn.rebind("cn=admin,ou=system,dc=cloudron", password)
        conn.unbind()
        return int(conn.result["result"])

    assert await blocking(bind, "directory-secret") == 13  # confidentialityRequired


async def test_starttls_not_configured(world: World) -> None:
    app = world.apps["wiki"]

    def flow() -> int:
        conn = connect(app.server, app.port)
        with contextlib.suppress(ldap3.core.exceptions.LDAPStartTLSError):
            conn.start_tls()
        code = int(conn.result["result"])
        conn.unbind()
        return code

    assert await blocking(flow) == 2
