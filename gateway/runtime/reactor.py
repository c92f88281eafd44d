"""Twisted's asyncio reactor on our one event loop.

It must be installed before anything imports ``twisted.internet.reactor``; after that,
ldaptor and twisted.mail run on the same loop as aiohttp and aiosmtpd.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any


def install_reactor(loop: asyncio.AbstractEventLoop) -> None:
    """Install the asyncio reactor on ``loop``; harmless if it already is."""
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor

        current = getattr(reactor, "_asyncioEventloop", None)
        if current is loop:
            return
        raise RuntimeError(
            f"a Twisted reactor ({type(reactor).__name__}) is already installed on another "
            "loop; install_reactor() must run before twisted.internet.reactor is imported"
        )
    from twisted.internet import asyncioreactor

    asyncioreactor.install(loop)  # type: ignore[no-untyped-call]


def new_loop(prefer_uvloop: bool = True) -> asyncio.AbstractEventLoop:
    """A fresh loop (uvloop when installed and wanted) with the reactor on it."""
    loop: asyncio.AbstractEventLoop
    if prefer_uvloop:
        try:
            import uvloop
        except ImportError:
            loop = asyncio.new_event_loop()
        else:
            loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    install_reactor(loop)
    return loop


def start_reactor() -> None:
    """Put the installed reactor in its running state without letting it run the loop.

    asyncio owns the loop (``run_until_complete``), so ``reactor.run()`` is never called;
    this fires Twisted's startup triggers instead: ``reactor.running`` becomes true and the
    thread pool behind ``deferToThread`` and name resolution starts. No signal handlers:
    the runtime installs its own.
    """
    reactor = _installed_reactor()
    if not reactor.running:
        reactor.startRunning(installSignalHandlers=False)


def stop_reactor(loop: asyncio.AbstractEventLoop, timeout: float) -> None:
    """Run Twisted's shutdown triggers (connections dropped, thread pool stopped).

    Called after the main coroutine, on the stopped loop. ``reactor.stop()`` fires the
    triggers on the next turn and ends with ``crash()``, which stops the loop; ``timeout``
    bounds a trigger that never finishes.
    """
    reactor = _installed_reactor()
    if not reactor.running:
        return
    reactor.stop()
    guard = loop.call_later(timeout, loop.stop)
    try:
        loop.run_forever()
    finally:
        guard.cancel()


def _installed_reactor() -> Any:
    """The reactor module-object, typed loosely: Twisted swaps the module for an instance."""
    from twisted.internet import reactor

    return reactor
