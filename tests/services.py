"""Real servers for the tests: a private PostgreSQL cluster, and a scratch database in it.

``GATEWAY_TEST_PG_URL`` names a server to use instead (any database on it the URL's user may
CREATE DATABASE from). Otherwise ``PostgresCluster`` runs one: initdb into a temp dir, trust
auth, listening on 127.0.0.1 and a unix socket in that dir, stopped and deleted at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

# initdb and postgres refuse to run as root; as root they run as this user.
SERVER_USER = "postgres"
STARTUP_TIMEOUT = 30.0


def find_server_bindir() -> Path | None:
    """The newest Debian/Ubuntu server install (``postgresql`` package), else ``initdb`` on PATH."""
    candidates = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()]
    if candidates:
        return max(candidates, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """A throwaway cluster: ``start()``, ``await ready()``, ``url``, ``stop()``."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_server_user: list[str] = []
        self._process: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise RuntimeError(
                    f"running as root, and there is no {SERVER_USER!r} user to run PostgreSQL as"
                ) from None
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._as_server_user = ["runuser", "-u", SERVER_USER, "--"]

    def _command(self, program: str, *args: str) -> list[str]:
        return [*self._as_server_user, str(self.bindir / program), *args]

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            self._command(program, *args), cwd=self.root, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def start(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--no-locale", "--no-sync",
        )
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            # Durability is worth nothing for a cluster deleted at the end of the run.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        options = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                self._command("postgres", "-D", str(self.data), *options),
                cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
            )

    async def ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Return once a client can connect; raise with the server's log if it never can."""
        deadline = time.monotonic() + timeout
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"postgres exited at start:\n{self._log_tail()}")
            try:
                conn = await asyncpg.connect(self.url, timeout=2)
            except (OSError, TimeoutError, asyncpg.PostgresError):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"postgres not ready after {timeout:.0f}s:\n{self._log_tail()}"
                    ) from None
                await asyncio.sleep(0.05)
                continue
            await conn.close()
            return

    def stop(self) -> None:
        try:
            if self._process is not None and self._process.poll() is None:
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "30")
                self._process.wait(timeout=30)
        finally:
            if self._process is not None and self._process.poll() is None:
                self._process.kill()
                self._process.wait(timeout=10)
            shutil.rmtree(self.root, ignore_errors=True)

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def database_url(server_url: str, name: str) -> str:
    return urlsplit(server_url)._replace(path=f"/{name}").geturl()


@contextlib.asynccontextmanager
async def scratch_database(server_url: str) -> AsyncIterator[str]:
    """A new empty database on the server for one test; dropped afterwards."""
    name = f"gateway_test_{secrets.token_hex(6)}"
    await _run_sql(server_url, f'CREATE DATABASE "{name}"')
    try:
        yield database_url(server_url, name)
    finally:
        # FORCE: a test that failed may have left a connection open.
        await _run_sql(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _run_sql(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()
