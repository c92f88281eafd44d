"""Twisted's asyncio reactor on our one event loop.

It must be installed before anything imports ``twisted.internet.reactor``; after that,
ldaptor and twisted.mail run on the same loop as aiohttp and aiosmtpd.
"""

from __future__ import annotations

import asyncio
import sys


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

    asyncioreactor.install(loop)


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
