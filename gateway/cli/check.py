"""``gateway check``: can this config start? Config, data dir, store and listen ports.

It changes nothing: it does not migrate, does not create a missing SQLite file, and
releases every port it tried at once. Each problem is one line on stderr and makes the
exit code 1; ``--json`` answers the whole report on stdout instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import socket
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from gateway.cli.output import CommandFailed, add_json_flag, print_json
from gateway.cli.session import open_configured_store
from gateway.config import Config, ListenAddress, Secret
from gateway.store import Store, StoreError, migrations


@dataclasses.dataclass
class Report:
    lines: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    problems: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    data: dict[str, Any] = dataclasses.field(default_factory=dict)

    def ok(self, area: str, text: str) -> None:
        self.lines.append((area, text))

    def problem(self, area: str, text: str) -> None:
        self.problems.append((area, text))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "check", help="check config, data dir, store and listen ports before starting"
    )
    add_json_flag(parser)
    parser.set_defaults(handler=_check)


async def _check(args: argparse.Namespace, config: Config) -> int:
    report = Report()
    report.data["config"] = {"source": config.source}
    report.ok("config", f"loaded from {config.source}")
    _check_data_dir(config, report)
    await _check_store(config, report)
    _check_listen(config, report)
    if args.json:
        print_json(
            {
                **report.data,
                "ok": not report.problems,
                "problems": [f"{area}: {text}" for area, text in report.problems],
            }
        )
    else:
        for area, text in report.lines:
            print(f"ok       {area:<9} {text}")
        for area, text in report.problems:
            print(f"problem  {area:<9} {text}", file=sys.stderr)
    return 1 if report.problems else 0


# -- data dir ----------------------------------------------------------------------------


def _check_data_dir(config: Config, report: Report) -> None:
    path = config.runtime.data_dir
    why = _unwritable(path)
    report.data["data_dir"] = {"path": str(path), "writable": why is None}
    if why is None:
        created = "" if path.exists() else " (created at start)"
        report.ok("data_dir", f"{path} is writable{created}")
    else:
        report.problem("data_dir", f"runtime.data_dir {path}: {why}")


def _unwritable(path: Path) -> str | None:
    """Why nothing can be written in ``path`` (or created as it), or None when it can.

    Tries a real file rather than trusting os.access, which answers yes to root even on a
    read-only mount.
    """
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory"
    try:
        fd, name = tempfile.mkstemp(dir=existing, prefix=".gateway-check-")
    except OSError as exc:
        return f"cannot write in {existing}: {exc.strerror}"
    os.close(fd)
    os.unlink(name)
    return None


# -- store -------------------------------------------------------------------------------


async def _check_store(config: Config, report: Report) -> None:
    info: dict[str, Any] = {"url": _redacted(config.store.url)}
    report.data["store"] = info
    sqlite_file = _sqlite_file(config)
    if sqlite_file is not None:
        info["engine"] = "sqlite"
        # SQLite writes its -wal and -shm files beside the store file.
        why = _unwritable(sqlite_file.parent)
        if why is not None:
            if sqlite_file.parent.absolute() != config.runtime.data_dir.absolute():
                report.problem("store", f"store.url {sqlite_file}: {why}")
            # else: the data dir line says it already
            return
        if not sqlite_file.exists():
            info.update(schema_version=0, pending_migrations=_versions_pending(set()))
            report.ok("store", f"sqlite {sqlite_file} does not exist yet (created at start)")
            return
    try:
        store = await open_configured_store(config, migrate=False)
    except CommandFailed as exc:
        report.problem("store", str(exc))
        return
    try:
        info["engine"] = store.dialect
        applied = await _applied_versions(store)
    except (StoreError, OSError, sqlite3.Error, asyncpg.PostgresError) as exc:
        report.problem("store", f"cannot read the schema history: {exc}")
        return
    finally:
        await store.close()
    known = {version for version, _, _ in migrations.available()}
    pending = _versions_pending(applied)
    info.update(schema_version=max(applied, default=0), pending_migrations=pending)
    unknown = sorted(applied - known)
    if unknown:
        report.problem(
            "store",
            f"schema has migrations this gateway does not know ({', '.join(map(str, unknown))}): "
            "a newer version wrote it",
        )
        return
    todo = f"{len(pending)} pending migration(s), applied at start" if pending else "up to date"
    report.ok("store", f"{store.dialect}, schema {max(applied, default=0)}, {todo}")


def _sqlite_file(config: Config) -> Path | None:
    """The file a sqlite:// URL names, resolved as the store resolves it; None for others."""
    parts = urlsplit(config.store.url)
    if parts.scheme != "sqlite" or parts.netloc:
        return None
    path = Path(parts.path[1:]) if parts.path.startswith("/") else Path(parts.path)
    if not path.name:
        return None
    return path if path.is_absolute() else config.runtime.data_dir / path


async def _applied_versions(store: Store) -> set[int]:
    if store.dialect == "sqlite":
        sql = "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = $1"
    else:
        sql = (
            "SELECT COUNT(*) AS n FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name = $1"
        )
    row = await store.db.fetchrow(sql, "schema_migrations")
    if not row or not row["n"]:
        return set()
    rows = await store.db.fetch("SELECT version FROM schema_migrations")
    return {int(r["version"]) for r in rows}


def _versions_pending(applied: set[int]) -> list[int]:
    return [version for version, _, _ in migrations.available() if version not in applied]


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


# -- listen ports ------------------------------------------------------------------------


def listen_addresses(
    section: Any, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ListenAddress]]:
    """Every ListenAddress of every enabled section, by dotted key, found by walking the
    schema: a server that adds a ``listen`` field is checked without touching this file."""
    if getattr(section, "enabled", True) is False:
        return
    for f in dataclasses.fields(section):
        if f.metadata.get("internal"):
            continue
        value = getattr(section, f.name)
        key = (*prefix, f.name)
        if isinstance(value, ListenAddress):
            yield ".".join(key), value
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                if isinstance(item, ListenAddress):
                    yield f"{'.'.join(key)}[{i}]", item
        elif dataclasses.is_dataclass(value) and not isinstance(value, type | Secret):
            yield from listen_addresses(value, key)


def _check_listen(config: Config, report: Report) -> None:
    results: list[dict[str, Any]] = []
    report.data["listen"] = results
    seen: dict[tuple[str, int], str] = {}
    for key, address in listen_addresses(config):
        entry: dict[str, Any] = {"key": key, "address": str(address), "free": True}
        results.append(entry)
        if address.port == 0:
            report.ok("listen", f"{key} {address}: the kernel picks a port")
            continue
        clash = seen.get((address.host, address.port))
        seen.setdefault((address.host, address.port), key)
        why = f"also used by {clash}" if clash else _busy(address)
        if why is None:
            report.ok("listen", f"{key} {address} is free")
            continue
        entry.update(free=False, problem=why)
        report.problem("listen", f"{key} {address}: {why}")


def _busy(address: ListenAddress) -> str | None:
    """Why a server could not listen on ``address`` now, or None when it could.

    Binds as asyncio's servers do (SO_REUSEADDR), so a port left in TIME_WAIT by a server
    that just stopped counts as free, as it is for the server.
    """
    try:
        infos = socket.getaddrinfo(
            address.host or None, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        return f"cannot resolve {address.host!r}: {exc.strerror}"
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return "in use by another process"
                if exc.errno == errno.EACCES:
                    return "binding a port below 1024 needs privileges"
                if exc.errno == errno.EADDRNOTAVAIL:
                    return "not an address of this machine"
                return exc.strerror or str(exc)
    return None
