"""Structured logs to stdout: one JSON object per line (or text for people), Twisted included.

Every record carries ``ts``, ``level``, ``logger`` and ``msg``; an audit event adds its
``audit`` fields (``gateway/audit.py`` logs them with ``extra={"audit": {...}}``) and an
exception adds ``exc``. Twisted's own log events are routed into the same ``logging`` tree
under their namespace, so ldaptor and twisted.mail lines look like every other line.
Secrets never reach here: the types that hold them redact their ``repr``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any, cast

from twisted.logger import ILogObserver, formatEvent, globalLogBeginner
from zope.interface import implementer

from gateway.config import LogConfig

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


def timestamp(created: float) -> str:
    """RFC 3339 in UTC with milliseconds: sorts as text and every log shipper parses it."""
    moment = datetime.fromtimestamp(created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        audit = getattr(record, "audit", None)
        if audit:
            entry["audit"] = audit
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        # default=str: a field of an odd type must not lose the whole line.
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        audit = getattr(record, "audit", None)
        if audit:
            head, sep, tail = line.partition("\n")
            fields = " ".join(f"{k}={v}" for k, v in audit.items())
            line = f"{head} [{fields}]{sep}{tail}"
        return line


def setup_logging(config: LogConfig, stream: IO[str] | None = None) -> logging.Handler:
    """Send every log record (ours, aiohttp's, Twisted's) to ``stream`` (stdout) as configured."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(JsonFormatter() if config.format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_LEVELS[config.level])
    route_twisted_logs()
    return handler


_TWISTED_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
                   "error": logging.ERROR, "critical": logging.CRITICAL}


@implementer(ILogObserver)
class TwistedToLogging:
    """A Twisted log observer that re-emits each event on the logger named by its namespace.

    (``twisted.logger`` never imports the reactor, so importing it here is safe before the
    runtime installs the asyncio one.)
    """

    def __call__(self, event: dict[str, Any]) -> None:
        level_constant = event.get("log_level")
        level = _TWISTED_LEVELS.get(getattr(level_constant, "name", ""), logging.INFO)
        logger = logging.getLogger(event.get("log_namespace") or "twisted")
        if not logger.isEnabledFor(level):
            return
        failure = event.get("log_failure")
        exc_info = None
        if failure is not None:
            exc_info = (failure.type, failure.value, failure.getTracebackObject())
        logger.log(level, "%s", formatEvent(event), exc_info=exc_info)


_twisted_routed = False


def route_twisted_logs() -> None:
    """Hand Twisted's log events to ``logging`` (once per process: Twisted allows one begin)."""
    global _twisted_routed
    if _twisted_routed:
        return
    # redirectStandardIO=False: stdout carries our JSON lines and the demo banner, and
    # must not be looped back into the log.
    observer = cast(ILogObserver, TwistedToLogging())  # @implementer is invisible to mypy
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    _twisted_routed = True
