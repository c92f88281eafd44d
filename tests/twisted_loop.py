"""pytest plugin: every async test runs on one loop with Twisted's asyncio reactor on it.

Loaded with ``-p tests.twisted_loop`` (pyproject.toml) before any test module is imported,
because twisted.mail and ldaptor import ``twisted.internet.reactor`` at import time and
the reactor must be the asyncio one on the loop pytest-asyncio runs the tests on.
"""

from __future__ import annotations

import asyncio

from gateway.runtime.reactor import install_reactor

_LOOP = asyncio.new_event_loop()
install_reactor(_LOOP)


class _ReactorLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """Hands pytest-asyncio's session runner the loop the reactor lives on."""

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        if _LOOP.is_closed():
            return super().new_event_loop()
        return _LOOP


# pytest-asyncio's runners ask the global policy for their loop.
asyncio.set_event_loop_policy(_ReactorLoopPolicy())
