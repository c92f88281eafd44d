"""Apache httpd with mod_authnz_ldap as a real LDAP consumer: a page behind Basic auth,
users looked up (search as the app's bind DN, then bind as the user) and a group required.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

MODULES = Path("/usr/lib/apache2/modules")
START_TIMEOUT = 20.0
SECRET_PAGE = "behind the LDAP wall\n"

CONFIG = """\
ServerRoot "{root}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{root}/httpd.pid"
ErrorLog "{root}/error.log"
LogLevel warn authnz_ldap:debug ldap:info
User {user}
Group {group}
LoadModule mpm_prefork_module {modules}/mod_mpm_prefork.so
LoadModule authn_core_module {modules}/mod_authn_core.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule authz_user_module {modules}/mod_authz_user.so
LoadModule auth_basic_module {modules}/mod_auth_basic.so
LoadModule ldap_module {modules}/mod_ldap.so
LoadModule authnz_ldap_module {modules}/mod_authnz_ldap.so
StartServers 1
MinSpareServers 1
MaxSpareServers 2
DocumentRoot "{root}/htdocs"
# No caching: each request asks the directory, so the test sees every change at once.
LDAPCacheEntries 0
LDAPOpCacheEntries 0
LDAPConnectionTimeout 5
<Directory "{root}/htdocs">
    Require all granted
</Directory>
<Location "/private">
    AuthType Basic
    AuthName "intranet"
    AuthBasicProvider ldap
    AuthLDAPURL "ldap://{server}:{ldap_port}/ou=users,dc=cloudron?username?sub?(objectclass=user)"
    AuthLDAPBindDN "{bind_dn}"
    AuthLDAPBindPassword "{bind_password}"
    AuthLDAPGroupAttribute member
    AuthLDAPGroupAttributeIsDN on
    Require ldap-group cn={group_name},ou=groups,dc=cloudron
</Location>
"""


def httpd_binary() -> str:
    path = shutil.which("apache2") or (
        "/usr/sbin/apache2" if Path("/usr/sbin/apache2").exists() else None)
    if path is None or not (MODULES / "mod_authnz_ldap.so").exists():
        pytest.fail("Apache httpd with mod_authnz_ldap is missing: scripts/install --test "
                    "installs apache2")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Apache:
    def __init__(self, *, server: str, ldap_port: int, bind_dn: str, bind_password: str,
                 group_name: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="gateway-httpd-"))
        self.port = free_port()
        (self.root / "htdocs" / "private").mkdir(parents=True)
        (self.root / "htdocs" / "private" / "page.txt").write_text(SECRET_PAGE)
        os.chmod(self.root, 0o755)
        user, group = ("nobody", "nogroup") if os.geteuid() == 0 else (
            f"#{os.geteuid()}", f"#{os.getegid()}")
        (self.root / "httpd.conf").write_text(CONFIG.format(
            root=self.root, port=self.port, modules=MODULES, server=server,
            ldap_port=ldap_port, bind_dn=bind_dn, bind_password=bind_password,
            group_name=group_name, user=user, group=group,
        ))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/private/page.txt"

    async def start(self) -> None:
        self._process = subprocess.Popen(
            [httpd_binary(), "-X", "-f", str(self.root / "httpd.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "APACHE_RUN_DIR": str(self.root)},
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"httpd exited at start: {self.log()}")
            try:
                _r, w = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if loop.time() > deadline:
                    raise RuntimeError(f"httpd not ready: {self.log()}") from None
                await asyncio.sleep(0.05)
                continue
            w.close()
            return

    def log(self) -> str:
        try:
            return (self.root / "error.log").read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        try:
            if self._process is not None and self._process.poll() is None:
                self._process.send_signal(signal.SIGTERM)
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait(timeout=10)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
