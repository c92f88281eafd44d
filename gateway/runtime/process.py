"""``run(config)``: the gateway process, from a fresh loop to an exit code.

The loop is created (uvloop when wanted and installed) and Twisted's asyncio reactor is put
on it before anything imports ``twisted.internet.reactor``: the protocol packages are
imported later, by the registry, only for the enabled sections.

Exit codes: 0 after a clean stop; 1 when a server could not start or did not stop cleanly;
128 + the signal number when a second signal cut the shutdown short.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import IO

from gateway.config import Config
from gateway.logs import setup_logging
from gateway.runtime.errors import ShutdownError, StartupError
from gateway.runtime.reactor import new_loop, start_reactor, stop_reactor
from gateway.runtime.registry import ServerBuilder
from gateway.runtime.runtime import Runtime
from gateway.runtime.signals import StopSignals

log = logging.getLogger("gateway.runtime")

EXIT_OK = 0
EXIT_FAILED = 1
# After a forced exit, whatever is still unwinding gets this long before the process ends.
FORCED_EXIT_DEADLINE = 2.0
# Twisted's shutdown triggers and the loop's leftover tasks get this long at the very end.
TEARDOWN_TIMEOUT = 2.0


def run(
    config: Config,
    *,
    extra_servers: Sequence[ServerBuilder] = (),
    out: IO[str] | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT; answer the process exit code.

    ``extra_servers`` are builders (``build(ctx) -> Server | list[Server]``) started after
    the registry's servers, for embedding and tests. ``out`` gets the demo banner (stdout).
    """
    loop = new_loop(config.runtime.uvloop)
    setup_logging(config.log)
    forced: list[int] = []

    def force(signum: int) -> None:
        forced.append(signum)
        main.cancel()
        # A task that swallows its cancellation must not keep the process alive.
        loop.call_later(FORCED_EXIT_DEADLINE, _exit_now, 128 + signum)

    signals = StopSignals(loop, force=force)
    signals.install()
    runtime = Runtime(config, out=out)
    for builder in extra_servers:
        runtime.add(builder)
    main = loop.create_task(_serve(runtime, signals), name="gateway-main")
    try:
        code = loop.run_until_complete(main)
    except asyncio.CancelledError:
        code = 128 + forced[0] if forced else EXIT_FAILED
        log.error("shutdown cut short by a second signal; in-flight work was abandoned")
    finally:
        signals.uninstall()
        _teardown(loop)
    return code


async def _serve(runtime: Runtime, signals: StopSignals) -> int:
    start_reactor()
    loop = asyncio.get_running_loop()
    log.info(
        "starting (config %s, loop %s.%s)",
        runtime.config.source, type(loop).__module__, type(loop).__qualname__,
    )
    try:
        await runtime.open()
        await runtime.start()
    except Exception as exc:
        if isinstance(exc, StartupError):
            log.error("cannot start: %s", exc)
        else:
            log.exception("cannot start: unexpected error")
        print(f"gateway: cannot start: {exc}", file=sys.stderr, flush=True)
        await _close(runtime)
        return EXIT_FAILED
    log.info("gateway serving; SIGTERM or SIGINT stops it")
    await signals.requested.wait()
    grace = runtime.config.runtime.shutdown_grace
    log.info("stopping: in-flight work has %.1fs to finish", grace)
    if not await _close(runtime):
        return EXIT_FAILED
    log.info("stopped cleanly")
    return EXIT_OK


async def _close(runtime: Runtime) -> bool:
    try:
        await runtime.close()
    except ShutdownError as exc:
        log.error("did not stop cleanly: %s", exc)
        return False
    return True


def _teardown(loop: asyncio.AbstractEventLoop) -> None:
    """Let Twisted and leftover tasks finish (bounded), then close the loop."""
    try:
        stop_reactor(loop, TEARDOWN_TIMEOUT)
        leftovers = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            loop.run_until_complete(asyncio.wait(leftovers, timeout=TEARDOWN_TIMEOUT))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
        logging.shutdown()


def _exit_now(code: int) -> None:
    """The last resort of a forced exit: skip every remaining cleanup."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
