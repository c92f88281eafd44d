"""``gateway serve`` as a real process: defaults, demo admin, admin endpoint, exits."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.audit import AuditLog
from gateway.auth import BadCredentials, LoginContext, UserIdentity, UserPassword, build_portal
from gateway.config import AuthConfig
from gateway.metrics import Metrics
from gateway.store import open_store
from tests.gateway_process import SERVER_SECTIONS, GatewayProcess, clean_env
from tests.ldap.test_seed_commands import LIST_USERS
from tests.services import free_port

GRACE = 5.0
# Interpreter start-up and teardown on a loaded 2-core machine, on top of the grace.
EXIT_MARGIN = 10.0
BANNER_RULE = "=" * 72
PASSWORD_LINE = re.compile(r"^\s+password: (\S+)$", re.MULTILINE)


def serve(tmp_path: Path, *options: str, **env: str) -> GatewayProcess:
    return GatewayProcess(
        tmp_path, ("serve", *options), env={"GATEWAY_RUNTIME_SHUTDOWN_GRACE": str(GRACE), **env}
    )


def stop(gateway: GatewayProcess) -> int:
    gateway.signal(signal.SIGTERM)
    return gateway.wait(GRACE + EXIT_MARGIN)


def non_json_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("{")]


async def check_login(db_file: Path, login: str, password: str) -> UserIdentity:
    store = await open_store(f"sqlite:///{db_file}")
    audit = AuditLog(store.audit)
    portal = await build_portal(AuthConfig(), store, audit=audit, metrics=Metrics())
    try:
        identity = await portal.login(UserPassword(login, password, LoginContext(door="cli")))
        with pytest.raises(BadCredentials):
            await portal.login(UserPassword(login, password + "x", LoginContext(door="cli")))
    finally:
        await audit.close()
        portal.verifier.hasher.close()
        await store.close()
    assert isinstance(identity, UserIdentity)
    return identity


def test_serves_health_and_metrics_logs_json_and_stops_on_sigterm(tmp_path: Path) -> None:
    gateway = serve(tmp_path)
    try:
        health = gateway.wait_healthy()
        assert health["status"] == "ok"
        assert health["store"] == {"engine": "sqlite", "reachable": True}
        assert health["servers"]["admin"] == {
            "state": "serving", "listen": [f"127.0.0.1:{gateway.admin_port}"],
        }
        status, body = gateway.get("/metrics")
        assert status == 200
        assert b"gateway_logins" in body
        assert b'gateway_server_up{server="admin"} 1.0' in body
        assert stop(gateway) == 0
    finally:
        gateway.kill()
    # Embedded default: SQLite under ./data of the working directory.
    assert (tmp_path / "data" / "gateway.db").exists()
    lines = gateway.json_lines()
    assert lines, gateway.stdout
    for line in lines:
        assert {"ts", "level", "logger", "msg"} <= line.keys()
    messages = [line["msg"] for line in lines]
    assert f"admin listening on 127.0.0.1:{gateway.admin_port}" in messages
    assert "stopped cleanly" in messages
    # Only the demo banner is not JSON on stdout.
    assert all(line.startswith(("=", " ")) for line in non_json_lines(gateway.stdout))
    assert gateway.stderr == ""


async def test_demo_password_printed_once_and_works(tmp_path: Path) -> None:
    first = serve(tmp_path)
    try:
        first.wait_healthy()
        assert stop(first) == 0
    finally:
        first.kill()
    passwords = PASSWORD_LINE.findall(first.stdout)
    assert len(passwords) == 1, first.stdout
    password = passwords[0]
    assert len(password) >= 16
    assert first.stdout.count(password) == 1
    assert first.stdout.count(BANNER_RULE) == 2
    # The log says a demo admin exists, never its password.
    assert all(password not in json.dumps(line) for line in first.json_lines())

    identity = await check_login(tmp_path / "data" / "gateway.db", "demo", password)
    assert identity.username == "demo"
    assert identity.is_admin
    assert identity.email == "demo@example.com"

    second = serve(tmp_path)
    try:
        second.wait_healthy()
        assert stop(second) == 0
    finally:
        second.kill()
    assert "password:" not in second.stdout
    assert non_json_lines(second.stdout) == []


def test_config_error_exits_non_zero_naming_the_key(tmp_path: Path) -> None:
    gateway = serve(tmp_path, GATEWAY_AUTH_TOTP_WINDOW="9")
    try:
        code = gateway.wait(EXIT_MARGIN)
    finally:
        gateway.kill()
    assert code != 0
    assert "GATEWAY_AUTH_TOTP_WINDOW" in gateway.stderr
    assert "auth.totp_window" in gateway.stderr
    assert "at most 2" in gateway.stderr


def test_port_in_use_exits_non_zero_naming_the_address(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # --data-dir too: the store opens (and is closed again) before the admin fails.
        gateway = serve(tmp_path, "--data-dir", "state", GATEWAY_ADMIN_LISTEN=f"127.0.0.1:{port}")
        try:
            code = gateway.wait(EXIT_MARGIN + GRACE)
        finally:
            gateway.kill()
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in gateway.stderr
    errors = [line["msg"] for line in gateway.json_lines() if line["level"] == "error"]
    assert any(f"127.0.0.1:{port}" in msg for msg in errors), gateway.stdout
    assert (tmp_path / "state" / "gateway.db").exists()
    assert not (tmp_path / "data").exists()


def test_serves_on_postgresql(tmp_path: Path, postgres_database: str) -> None:
    gateway = serve(tmp_path, GATEWAY_STORE_URL=postgres_database)
    try:
        health = gateway.wait_healthy()
        assert health["store"] == {"engine": "postgresql", "reachable": True}
        assert len(PASSWORD_LINE.findall(gateway.stdout)) == 1
        assert stop(gateway) == 0
    finally:
        gateway.kill()
    # Nothing of SQLite's was created: the store lives in PostgreSQL.
    assert not (tmp_path / "data" / "gateway.db").exists()


def test_the_serve_path_imports_no_reactor(tmp_path: Path) -> None:
    """The reactor must be installed on our loop first: importing the CLI, the runtime
    and what they use must not pull ``twisted.internet.reactor`` in by itself."""
    probe = GatewayProcess(
        tmp_path,
        argv=("-c", (
            "import sys, gateway.cli.main, gateway.cli.serve, gateway.runtime, gateway.logs, "
            "gateway.demo; gateway.cli.main.build_parser(); "
            "print('twisted.internet.reactor' in sys.modules)"
        )),
        program=(sys.executable,),
    )
    try:
        assert probe.wait(EXIT_MARGIN) == 0, probe.stderr
    finally:
        probe.kill()
    assert probe.stdout == "False\n"


def test_the_embedded_default_runs_the_whole_suite_with_a_demo_app(tmp_path: Path) -> None:
    """No config: every server, the demo admin, and the demo app running behind the wall
    (listeners on free ports here, so the test never meets a gateway already running)."""
    everything_on = {f"GATEWAY_{s.upper()}_ENABLED": "true" for s in SERVER_SECTIONS}
    # The LDAP port apps are told; the directory listens on it at the app's own address.
    everything_on["GATEWAY_CONTAINERS_LDAP_PORT"] = str(free_port())
    gateway = serve(tmp_path, GATEWAY_DEMO_APP_PORT=str(free_port()), **everything_on)
    try:
        health = gateway.wait_healthy()
        servers = health["servers"]
        for name in ("ldap", "proxyauth", "containers", "mail-queue", "mail-inbound",
                     "mail-imap", "mail-pop3", "mail-submission-app"):
            assert servers[name]["state"] == "serving", (name, servers)
        assert PASSWORD_LINE.search(gateway.stdout)

        def demo_app() -> dict[str, object]:
            listing = subprocess.run(
                [sys.executable, "-m", "gateway", "app", "list", "--json"], cwd=tmp_path,
                env=clean_env({**everything_on}), capture_output=True, text=True, timeout=60,
                check=True,
            )
            (app,) = json.loads(listing.stdout)
            assert isinstance(app, dict)
            return app

        gateway.wait_until(lambda: demo_app()["health"] == "healthy", timeout=60)
        assert demo_app()["fqdn"] == "demo.apps.localhost"

        # The environment the container manager gave the app binds to the directory: the
        # seed's debug command, verbatim, lists the demo admin.
        app_env = json.loads(subprocess.run(
            [sys.executable, "-m", "gateway", "app", "env", "demo.apps.localhost", "--json"],
            cwd=tmp_path,
            env=clean_env({**everything_on}), capture_output=True, text=True, timeout=60,
            check=True,
        ).stdout)
        listed = subprocess.run(
            ["bash", "-c", LIST_USERS], env={**os.environ, **app_env}, capture_output=True,
            text=True, timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        assert re.search(r"^username: demo$", listed.stdout, re.MULTILINE), listed.stdout
        host, port = servers["proxyauth"]["listen"][0].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            conn.sendall(b"GET /private HTTP/1.1\r\nHost: demo.apps.localhost\r\n"
                         b"Accept: text/html\r\nConnection: close\r\n\r\n")
            head = conn.recv(4096).decode("latin-1")
        assert head.startswith("HTTP/1.1 302"), head
        assert "Location: /login?redirect=/private" in head, head
    finally:
        assert stop(gateway) == 0, gateway.stderr
