"""A gateway with one extra, slow server, run as a process by tests/test_runtime.py.

    python tests/slow_server.py WORK_DIR JOB_SECONDS [--stubborn]

The config comes from GATEWAY_* variables, and the server goes in through ``run``'s public
``extra_servers``, exactly as ``gateway serve`` runs. Each TCP connection starts one job: the
server answers ``started``, works JOB_SECONDS, writes WORK_DIR/done-<n>, answers ``done``.
The bound port is written to WORK_DIR/port. ``--stubborn``: ``stop()`` waits for its jobs
whatever the grace, as a misbehaving server would.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
from pathlib import Path

from twisted.logger import Logger

from gateway.config import load_config
from gateway.runtime import InFlight, ServerContext, run
from gateway.runtime.server import Address

tlog = Logger(namespace="tests.slow_server")


class SlowServer:
    name = "slow"

    def __init__(self, work_dir: Path, job_seconds: float, *, stubborn: bool) -> None:
        self._work_dir = work_dir
        self._job_seconds = job_seconds
        self._stubborn = stubborn
        self._jobs = InFlight(self.name)
        self._numbers = itertools.count(1)
        self._server: asyncio.Server | None = None

    async def start(self) -> list[Address]:
        from twisted.internet import reactor

        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        # Through Twisted's logger on purpose: the test checks it lands in the JSON log.
        tlog.info(
            "slow server on {port}; reactor {reactor} running={running}",
            port=port, reactor=type(reactor).__name__, running=reactor.running,
        )
        (self._work_dir / "port").write_text(str(port))
        return [(host, port)]

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = next(self._numbers)
        self._jobs.spawn(self._job(number, writer), name=f"job-{number}")

    async def _job(self, number: int, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"started\n")
            await writer.drain()
            await asyncio.sleep(self._job_seconds)
            (self._work_dir / f"done-{number}").write_text("done")
            writer.write(b"done\n")
            await writer.drain()
        finally:
            writer.close()

    async def stop(self, grace: float) -> None:
        if self._server is not None:
            self._server.close()  # stop accepting; the jobs already running go on
        if self._stubborn:
            # Bounded by the runtime, which cancels a stop() that overruns the grace.
            while len(self._jobs):
                await asyncio.sleep(0.05)
            return
        await self._jobs.drain(grace)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("job_seconds", type=float)
    parser.add_argument("--stubborn", action="store_true")
    args = parser.parse_args()

    def build(ctx: ServerContext) -> SlowServer:
        return SlowServer(args.work_dir, args.job_seconds, stubborn=args.stubborn)

    return run(load_config(), extra_servers=[build])


if __name__ == "__main__":
    sys.exit(main())
