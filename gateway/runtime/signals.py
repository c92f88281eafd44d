"""SIGTERM and SIGINT: the first asks for a graceful stop, a second one forces the exit.

Handlers go on the loop (``loop.add_signal_handler``), so they run as ordinary callbacks
between tasks, never in the middle of one.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import final

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@final
class StopSignals:
    def __init__(
        self, loop: asyncio.AbstractEventLoop, *, force: Callable[[int], None]
    ) -> None:
        self._loop = loop
        self._force = force
        self.requested = asyncio.Event()
        self.signum: int | None = None

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            self._loop.add_signal_handler(signum, self._received, signum)

    def uninstall(self) -> None:
        for signum in STOP_SIGNALS:
            self._loop.remove_signal_handler(signum)

    def _received(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if not self.requested.is_set():
            self.signum = signum
            log.info("%s received: stopping (a second one forces the exit)", name)
            self.requested.set()
            return
        log.warning("%s received again: forcing the exit now", name)
        self._force(signum)
