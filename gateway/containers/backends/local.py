"""Apps as child processes of the gateway: the embedded default and the demo.

Each app runs its command with the same environment a container would get, in its data
directory, in a session of its own (so stopping it reaches the children a shell started),
with stdout and stderr appended to its log file. A process that exits is started again after
a delay that doubles up to ``MAX_BACKOFF`` and resets once it has stayed up for a while, as
Docker's restart policy does. The gateway's own environment is not passed on: it may hold
``GATEWAY_*`` settings and secrets an app has no business reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from typing import Literal, final

from gateway.config.containers import ContainersConfig
from gateway.containers.errors import BackendError
from gateway.containers.launch import Launched, LaunchSpec, StateListener

log = logging.getLogger(__name__)

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
# An app that stayed up this long is considered healthy again; its next crash restarts fast.
STABLE_AFTER = 60.0
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def process_environment(spec: LaunchSpec) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", DEFAULT_PATH),
        "HOME": str(spec.files.data),
        "LANG": "C.UTF-8",
        **spec.env,
    }


@final
class SupervisedProcess:
    """One app's process, started again whenever it exits until ``stop()``."""

    def __init__(self, spec: LaunchSpec, on_state: StateListener) -> None:
        self.spec = spec
        self._on_state = on_state
        self._process: asyncio.subprocess.Process | None = None
        self._stopping = asyncio.Event()
        # What stop() allows a run to take to end; also for a run that starts during stop().
        self._grace = 10.0
        self._task: asyncio.Task[None] | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self) -> None:
        """Start the first run; raise if the command cannot be started at all."""
        self.spec.files.create()
        await self._spawn()
        self._task = asyncio.create_task(self._supervise(), name=f"app-{self.spec.app_id}")

    async def _spawn(self) -> None:
        spec = self.spec
        try:
            with spec.files.log.open("ab") as output:
                self._process = await asyncio.create_subprocess_exec(
                    *spec.command,
                    cwd=spec.files.data,
                    env=process_environment(spec),
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except OSError as exc:
            why = f"cannot run {spec.command[0]!r}: {exc.strerror}"
            raise BackendError(spec.app_id, why) from exc
        self._on_state(spec.app_id, "running", None, _process_label(self))

    async def _supervise(self) -> None:
        backoff = FIRST_BACKOFF
        while True:
            began = time.monotonic()
            if self._process is not None:
                code = await self._process.wait()
                problem = f"exited with status {code}"
            else:
                problem = "could not be started"
            if self._stopping.is_set():
                return
            if time.monotonic() - began > STABLE_AFTER:
                backoff = FIRST_BACKOFF
            reason = f"{problem}; restarting in {backoff:.0f}s"
            log.warning("app %s %s", self.spec.app_id, reason)
            self._on_state(self.spec.app_id, "crashed", reason)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
                return
            backoff = min(backoff * 2, MAX_BACKOFF)
            self.restarts += 1
            try:
                await self._spawn()
            except BackendError as exc:
                self._process = None
                self._on_state(self.spec.app_id, "error", exc.why)
            if self._stopping.is_set():
                # stop() came while this run was starting and only saw the previous one:
                # end this one too, or the wait above would outlive the gateway.
                await self._terminate(self._grace)
                return

    async def stop(self, grace: float) -> None:
        """SIGTERM the app's process group, SIGKILL it after ``grace`` seconds."""
        self._grace = grace
        self._stopping.set()
        await self._terminate(grace)
        if self._task is not None:
            await self._task

    async def _terminate(self, grace: float) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                log.warning("app %s ignored SIGTERM for %.1fs; killing it", self.spec.app_id, grace)
                _signal_group(process.pid, signal.SIGKILL)
                await process.wait()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # The child leads its own session, so its process group id is its pid.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


@final
class LocalProcessBackend:
    name: Literal["docker", "local"] = "local"

    def __init__(self, config: ContainersConfig, on_state: StateListener) -> None:
        self._config = config
        self._on_state = on_state
        self._processes: dict[str, tuple[str, SupervisedProcess]] = {}

    async def open(self) -> None:
        return None

    async def ensure(self, spec: LaunchSpec) -> Launched:
        if not spec.command:
            raise BackendError(spec.app_id, "no command to run (install it with --command)")
        current = self._processes.get(spec.app_id)
        if current is not None and current[0] == spec.fingerprint:
            return Launched(container_id=_process_label(current[1]))
        if current is not None:
            await current[1].stop(self._config.stop_timeout)
            del self._processes[spec.app_id]
        process = SupervisedProcess(spec, self._on_state)
        await process.start()
        self._processes[spec.app_id] = (spec.fingerprint, process)
        return Launched(container_id=_process_label(process))

    async def remove(self, app_id: str) -> None:
        current = self._processes.pop(app_id, None)
        if current is not None:
            await current[1].stop(self._config.stop_timeout)

    async def managed(self) -> set[str]:
        return set(self._processes)

    def process(self, app_id: str) -> SupervisedProcess | None:
        current = self._processes.get(app_id)
        return current[1] if current else None

    async def close(self, grace: float) -> None:
        """Children do not outlive the gateway: stop them all, sharing ``grace``."""
        processes = [p for _, p in self._processes.values()]
        self._processes.clear()
        await asyncio.gather(*(p.stop(grace) for p in processes))
        for process in processes:
            self._on_state(process.spec.app_id, "stopped", "the gateway stopped")


def _process_label(process: SupervisedProcess) -> str:
    return f"pid:{process.pid}"
