"""The runtime: start order, stop order, failures, in-flight work on SIGTERM, logs, health."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from twisted.logger import LogLevel

from gateway.config import Config, ListenAddress
from gateway.logs import JsonFormatter, TextFormatter, TwistedToLogging
from gateway.runtime import (
    Runtime,
    ServerContext,
    ServerGroup,
    ShutdownError,
    StartupError,
)
from gateway.runtime.admin_bans import read_admin_token
from gateway.runtime.registry import build_servers, enabled_builders
from gateway.runtime.server import Address
from tests.gateway_process import REPO, GatewayProcess

SCRIPT = REPO / "tests" / "slow_server.py"
# Interpreter start-up and teardown on a loaded 2-core machine, on top of any grace.
EXIT_MARGIN = 10.0


class FakeServer:
    """Records its start and stop in a shared journal; can be told to fail either."""

    def __init__(
        self, name: str, journal: list[str], *, fail_start: bool = False, fail_stop: bool = False
    ) -> None:
        self.name = name
        self.journal = journal
        self.fail_start = fail_start
        self.fail_stop = fail_stop
        self.grace: float | None = None

    async def start(self) -> list[Address]:
        if self.fail_start:
            raise OSError(98, f"{self.name} cannot bind")
        self.journal.append(f"start {self.name}")
        return [("127.0.0.1", 1000 + len(self.journal))]

    async def stop(self, grace: float) -> None:
        self.grace = grace
        self.journal.append(f"stop {self.name}")
        if self.fail_stop:
            raise RuntimeError(f"{self.name} broke while stopping")


# --- the server group: order and failures ---------------------------------------------


async def test_stops_in_reverse_order_and_reports_every_stop_failure() -> None:
    journal: list[str] = []
    group = ServerGroup()
    for name, fails in (("a", False), ("b", True), ("c", False), ("d", True)):
        group.add(FakeServer(name, journal, fail_stop=fails))
    bound = await group.start(rollback_grace=1.0)
    assert list(bound) == ["a", "b", "c", "d"]
    assert {s.state for s in group.status().values()} == {"serving"}

    with pytest.raises(ShutdownError) as caught:
        await group.stop(3.0)
    assert journal == [
        "start a", "start b", "start c", "start d", "stop d", "stop c", "stop b", "stop a",
    ]
    assert [where for where, _ in caught.value.failures] == ["d", "b"]
    assert "d broke while stopping" in str(caught.value)
    assert "b broke while stopping" in str(caught.value)
    states = {name: s.state for name, s in group.status().items()}
    assert states == {"a": "stopped", "b": "failed", "c": "stopped", "d": "failed"}


async def test_a_failed_start_stops_the_started_ones_in_reverse() -> None:
    journal: list[str] = []
    group = ServerGroup()
    group.add(FakeServer("a", journal))
    group.add(FakeServer("b", journal))
    group.add(FakeServer("c", journal, fail_start=True))
    group.add(FakeServer("d", journal))
    with pytest.raises(StartupError) as caught:
        await group.start(rollback_grace=1.0)
    assert caught.value.server == "c"
    assert "c cannot bind" in str(caught.value)
    assert journal == ["start a", "start b", "stop b", "stop a"]
    assert group.status()["c"].state == "failed"
    assert group.status()["d"].state == "new"


async def test_servers_share_one_grace_deadline() -> None:
    journal: list[str] = []
    group = ServerGroup()
    servers = [FakeServer(name, journal) for name in "ab"]
    for server in servers:
        group.add(server)
    await group.start(rollback_grace=0.0)
    await group.stop(2.0)
    first_stopped, then_stopped = servers[1], servers[0]
    assert first_stopped.grace is not None
    assert then_stopped.grace is not None
    assert 0 < then_stopped.grace <= first_stopped.grace <= 2.0


def test_two_servers_with_one_name_are_refused() -> None:
    group = ServerGroup()
    group.add(FakeServer("a", []))
    with pytest.raises(ValueError, match="two servers are named 'a'"):
        group.add(FakeServer("a", []))


# --- the registry ---------------------------------------------------------------------


def test_an_enabled_section_whose_module_is_missing_fails_at_start(tmp_path: Path) -> None:
    config = embedded_config(tmp_path)
    config = dataclasses.replace(config, ldap=dataclasses.replace(config.ldap, enabled=True))
    table = {"ldap": "tests.no_such_module:build", "mail": "tests.nor_this_one:build"}
    with pytest.raises(StartupError) as caught:
        enabled_builders(config, table)
    assert caught.value.server == "ldap"
    assert "[ldap] is enabled but tests.no_such_module cannot be loaded" in str(caught.value)
    # A disabled section is never imported, so its missing module is no error.
    assert enabled_builders(embedded_config(tmp_path), table) == []


def test_a_builder_may_answer_one_server_or_several() -> None:
    ctx = object()
    one = build_servers("x", lambda _: FakeServer("x", []), ctx)  # type: ignore[arg-type]
    two = build_servers(
        "y", lambda _: [FakeServer("y1", []), FakeServer("y2", [])], ctx  # type: ignore[arg-type]
    )
    assert [s.name for s in one] == ["x"]
    assert [s.name for s in two] == ["y1", "y2"]
    with pytest.raises(StartupError, match="not a Server"):
        build_servers("z", lambda _: [object()], ctx)  # type: ignore[arg-type]


# --- the runtime in process: shared objects, admin endpoint, demo ---------------------


def embedded_config(data_dir: Path, **demo: object) -> Config:
    config = Config()
    off = {
        name: dataclasses.replace(getattr(config, name), enabled=False)
        for name in ("ldap", "proxyauth", "mail", "containers")
    }
    return dataclasses.replace(
        config,
        **off,
        runtime=dataclasses.replace(config.runtime, data_dir=data_dir, shutdown_grace=2.0),
        admin=dataclasses.replace(config.admin, listen=ListenAddress("127.0.0.1", 0)),
        demo=dataclasses.replace(config.demo, **demo),
    )


async def test_runtime_starts_extras_before_admin_and_stops_in_reverse(tmp_path: Path) -> None:
    journal: list[str] = []
    out = io.StringIO()
    runtime = Runtime(embedded_config(tmp_path), out=out)
    seen: list[ServerContext] = []

    def build(ctx: ServerContext) -> list[FakeServer]:
        seen.append(ctx)
        return [FakeServer("one", journal), FakeServer("two", journal)]

    runtime.add(build)
    await runtime.open()
    try:
        bound = await runtime.start()
        assert list(bound) == ["one", "two", "admin"]
        assert seen[0].store is runtime.context.store
        host, port = bound["admin"][0]
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://{host}:{port}/healthz") as response:
                assert response.status == 200
                health = await response.json()
            async with http.get(f"http://{host}:{port}/metrics") as response:
                metrics = await response.text()
        assert health["status"] == "ok"
        assert list(health["servers"]) == ["one", "two", "admin"]
        assert health["servers"]["one"]["state"] == "serving"
        assert 'gateway_server_up{server="two"} 1.0' in metrics
    finally:
        await runtime.close()
    assert journal == ["start one", "start two", "stop two", "stop one"]
    assert out.getvalue().count("password:") == 1

    # The store has a user now: no second demo admin, no second banner.
    again = io.StringIO()
    rerun = Runtime(embedded_config(tmp_path), out=again)
    await rerun.open()
    try:
        assert await rerun.context.store.users.count() == 1
    finally:
        await rerun.close()
    assert again.getvalue() == ""


async def test_healthz_answers_503_when_the_store_does_not(tmp_path: Path) -> None:
    runtime = Runtime(embedded_config(tmp_path, enabled=False), out=io.StringIO())
    await runtime.open()
    try:
        bound = await runtime.start()
        host, port = bound["admin"][0]
        await runtime.context.store.close()
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://{host}:{port}/healthz") as response,
        ):
            assert response.status == 503
            health = await response.json()
        assert health["status"] == "unavailable"
        assert health["store"]["reachable"] is False
        assert health["servers"]["admin"]["state"] == "serving"
    finally:
        await runtime.close()


async def test_the_admin_endpoint_serves_the_ban_book_to_token_holders(tmp_path: Path) -> None:
    runtime = Runtime(embedded_config(tmp_path, enabled=False), out=io.StringIO())
    await runtime.open()
    try:
        host, port = (await runtime.start())["admin"][0]
        token = read_admin_token(tmp_path)
        assert token
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://{host}:{port}/bans") as response:
                assert response.status == 401
            headers = {"Authorization": f"Bearer {token}"}
            async with http.get(f"http://{host}:{port}/bans", headers=headers) as response:
                assert response.status == 200
                book = await response.json()
        assert book["bans"] == []
    finally:
        await runtime.close()


async def test_demo_disabled_creates_no_user(tmp_path: Path) -> None:
    out = io.StringIO()
    runtime = Runtime(embedded_config(tmp_path, enabled=False), out=out)
    await runtime.open()
    try:
        assert await runtime.context.store.users.count() == 0
    finally:
        await runtime.close()
    assert out.getvalue() == ""


async def test_a_port_in_use_is_a_startup_error_naming_the_address(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = embedded_config(tmp_path, enabled=False)
        config = dataclasses.replace(
            config, admin=dataclasses.replace(config.admin, listen=ListenAddress("127.0.0.1", port))
        )
        journal: list[str] = []
        runtime = Runtime(config, out=io.StringIO())
        runtime.add(lambda _: FakeServer("first", journal))
        await runtime.open()
        try:
            with pytest.raises(StartupError) as caught:
                await runtime.start()
        finally:
            await runtime.close()
    assert str(caught.value) == f"admin: cannot listen on 127.0.0.1:{port}: address already in use"
    assert journal == ["start first", "stop first"]


# --- log formats ----------------------------------------------------------------------


def record(msg: str, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("gateway.audit", logging.INFO, __file__, 1, msg, (), None)
    rec.__dict__.update(extra)
    return rec


def test_json_lines_carry_audit_fields_and_exceptions() -> None:
    line = json.loads(JsonFormatter().format(record("user.login", audit={"door": "ldap"})))
    assert line["level"] == "info"
    assert line["logger"] == "gateway.audit"
    assert line["msg"] == "user.login"
    assert line["audit"] == {"door": "ldap"}
    assert line["ts"].endswith("Z")
    try:
        raise ValueError("boom")
    except ValueError:
        failed = record("failed", exc_info=sys.exc_info())
    line = json.loads(JsonFormatter().format(failed))
    assert "ValueError: boom" in line["exc"]
    assert "audit" not in line


def test_text_lines_show_audit_fields() -> None:
    text = TextFormatter().format(record("user.login", audit={"door": "ldap", "login": "al"}))
    assert text.endswith("user.login [door=ldap login=al]")


def test_twisted_events_reach_the_logger_of_their_namespace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    observer = TwistedToLogging()
    with caplog.at_level(logging.DEBUG, logger="tests.twisted.ns"):
        observer({
            "log_level": LogLevel.warn, "log_namespace": "tests.twisted.ns",
            "log_format": "hello {who}", "who": "world", "log_time": time.time(),
        })
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("tests.twisted.ns", logging.WARNING, "hello world"),
    ]


# --- SIGTERM with in-flight work, as a real process -----------------------------------


def slow_gateway(tmp_path: Path, job_seconds: float, grace: float, *args: str) -> GatewayProcess:
    return GatewayProcess(
        tmp_path,
        argv=(str(tmp_path), str(job_seconds), *args),
        env={
            "GATEWAY_RUNTIME_DATA_DIR": str(tmp_path / "data"),
            "GATEWAY_RUNTIME_SHUTDOWN_GRACE": str(grace),
            "GATEWAY_DEMO_ENABLED": "false",
        },
        program=(sys.executable, str(SCRIPT)),
    )


def start_job(gateway: GatewayProcess, tmp_path: Path) -> socket.socket:
    """Wait for the slow server, open one job and return once it is running."""
    gateway.wait_until(lambda: (tmp_path / "port").exists())
    port = int((tmp_path / "port").read_text())
    client = socket.create_connection(("127.0.0.1", port), timeout=EXIT_MARGIN)
    assert client.recv(100) == b"started\n"
    return client


def log_messages(gateway: GatewayProcess) -> list[str]:
    return [line["msg"] for line in gateway.json_lines()]


def test_sigterm_lets_in_flight_work_finish(tmp_path: Path) -> None:
    gateway = slow_gateway(tmp_path, job_seconds=0.5, grace=5.0)
    try:
        gateway.wait_healthy()
        with start_job(gateway, tmp_path) as client:
            gateway.signal(signal.SIGTERM)
            code = gateway.wait(5.0 + EXIT_MARGIN)
            reply = client.recv(100)
    finally:
        gateway.kill()
    assert code == 0, gateway.stdout + gateway.stderr
    assert (tmp_path / "done-1").read_text() == "done"
    assert reply == b"done\n"
    lines = gateway.json_lines()
    twisted_lines = [line for line in lines if line["logger"] == "tests.slow_server"]
    assert len(twisted_lines) == 1
    assert "reactor AsyncioSelectorReactor running=True" in twisted_lines[0]["msg"]
    messages = [line["msg"] for line in lines]
    assert messages.index("slow listening on 127.0.0.1:" + (tmp_path / "port").read_text()) < (
        messages.index(f"admin listening on 127.0.0.1:{gateway.admin_port}")
    )
    assert messages[-1] == "stopped cleanly"


def test_work_longer_than_the_grace_is_cut_off_and_logged(tmp_path: Path) -> None:
    grace = 0.5
    gateway = slow_gateway(tmp_path, job_seconds=60, grace=grace)
    try:
        gateway.wait_healthy()
        with start_job(gateway, tmp_path):
            signalled = time.monotonic()
            gateway.signal(signal.SIGTERM)
            code = gateway.wait(grace + EXIT_MARGIN)
            took = time.monotonic() - signalled
    finally:
        gateway.kill()
    assert code == 0, gateway.stdout + gateway.stderr
    assert took < grace + EXIT_MARGIN
    assert not (tmp_path / "done-1").exists()
    assert "slow: cut off 1 in-flight job(s) after the 0.5s grace: job-1" in log_messages(gateway)


def test_a_server_that_ignores_the_grace_is_cut_off_and_exit_is_non_zero(
    tmp_path: Path,
) -> None:
    gateway = slow_gateway(tmp_path, 60, 0.5, "--stubborn")
    try:
        gateway.wait_healthy()
        with start_job(gateway, tmp_path):
            gateway.signal(signal.SIGTERM)
            code = gateway.wait(0.5 + EXIT_MARGIN)
    finally:
        gateway.kill()
    assert code == 1
    messages = log_messages(gateway)
    assert any(m.startswith("slow did not stop within its") for m in messages), messages
    assert any(m.startswith("did not stop cleanly: 1 failure(s)") for m in messages), messages


def test_a_second_signal_forces_a_prompt_exit(tmp_path: Path) -> None:
    gateway = slow_gateway(tmp_path, job_seconds=60, grace=60)
    try:
        gateway.wait_healthy()
        with start_job(gateway, tmp_path):
            gateway.signal(signal.SIGTERM)
            gateway.wait_until(lambda: any(
                m.startswith("stopping:") for m in log_messages(gateway)
            ))
            gateway.signal(signal.SIGINT)
            code = gateway.wait(EXIT_MARGIN)
    finally:
        gateway.kill()
    assert code == 128 + signal.SIGINT
    assert "SIGINT received again: forcing the exit now" in log_messages(gateway)

