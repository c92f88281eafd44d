"""A gateway running as a real child process, as an operator would run it.

Output goes to files, not pipes (a chatty child can never block on a full pipe, and the test
reads whatever is there at any moment); every wait is bounded by a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.services import free_port

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
POLL_INTERVAL = 0.05


def clean_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """The test's environment minus any GATEWAY_* of the caller, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
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
