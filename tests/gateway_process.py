"""A gateway running as a real child process, as an operator would run it.

Output goes to files, not pipes (a chatty child can never block on a full pipe, and the test
reads whatever is there at any moment); every wait is bounded by a deadline.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import typing
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gateway.config import Config, ListenAddress, Secret
from gateway.config.loader import env_names
from tests.services import free_port

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
POLL_INTERVAL = 0.05


# A test turns on the servers it is about; the rest stay off so tests never fight over the
# embedded default's fixed ports (and a gateway a developer runs on them).
SERVER_SECTIONS = ("ldap", "proxyauth", "mail", "containers")


def _listen_fields(cls: type, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Dotted paths of every listen address the schema turns on by default."""
    found: list[tuple[str, ...]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint) and hint not in (ListenAddress, Secret):
            found += _listen_fields(hint, (*path, f.name))  # type: ignore[arg-type]
        elif hint is ListenAddress or ListenAddress in typing.get_args(hint) or (
            typing.get_origin(hint) is list and typing.get_args(hint) == (ListenAddress,)
        ):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            if default:  # None or an empty list: that listener is off by default
                found.append((*path, f.name))
    return found


def isolated_servers() -> dict[str, str]:
    """Every server off, and every default listen address on a free port (port 0)."""
    names = {path: name for name, path in env_names().items()}
    env = {f"GATEWAY_{section.upper()}_ENABLED": "false" for section in SERVER_SECTIONS}
    env.update({names[path]: "127.0.0.1:0" for path in _listen_fields(Config)})
    return env


def clean_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """The test's environment minus any GATEWAY_* of the caller, every server off and on
    free ports (``isolated_servers``), plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(isolated_servers())
    env.update(overrides)
    return env


class GatewayProcess:
    def __init__(
        self, cwd: Path, argv: Sequence[str] = ("serve",), env: Mapping[str, str] | None = None,
        *, program: Sequence[str] = (sys.executable, "-m", "gateway"),
    ) -> None:
        self.cwd = cwd
        self.admin_port = free_port()
        self.stdout_path = cwd / f"stdout-{self.admin_port}.txt"
        self.stderr_path = cwd / f"stderr-{self.admin_port}.txt"
        overrides = {"GATEWAY_ADMIN_LISTEN": f"127.0.0.1:{self.admin_port}", **(env or {})}
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [*program, *argv], cwd=cwd, env=clean_env(overrides), stdout=out, stderr=err
            )

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def json_lines(self) -> list[dict[str, Any]]:
        """Every stdout line that is a JSON object (the log), in order."""
        found = []
        for line in self.stdout.splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.admin_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        """Poll /healthz until it answers 200; fail with the child's output if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"gateway exited ({self.process.returncode}) before serving:\n"
                    f"{self.stdout}\n{self.stderr}"
                )
            try:
                status, body = self.get("/healthz", timeout=1.0)
            except OSError:
                time.sleep(POLL_INTERVAL)
                continue
            if status == 200:
                result: dict[str, Any] = json.loads(body)
                return result
            time.sleep(POLL_INTERVAL)
        raise AssertionError(f"/healthz never answered 200:\n{self.stdout}\n{self.stderr}")

    def wait_until(self, predicate: Any, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met in {timeout}s:\n{self.stdout}")
            if self.process.poll() is not None:
                raise AssertionError(f"exited early:\n{self.stdout}\n{self.stderr}")
            time.sleep(POLL_INTERVAL)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """The exit code, within ``timeout`` seconds (raises TimeoutExpired otherwise)."""
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """Last resort for a test that failed half-way: never leave a gateway behind."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
