"""One command's use of the store: open it from the config, hand it over, close it.

``store_command`` turns ``async def body(args, session) -> int`` into a handler for
``gateway.cli.main``: it opens the store (migrating, as ``serve`` would), builds the
account administration for the ``cli`` door, runs the body, writes the audit events it
recorded, and maps the store's refusals to exit code 1 with the store's own message.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import getpass
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from gateway.accounts import Accounts
from gateway.audit import AuditLog
from gateway.auth import hasher_for
from gateway.cli.output import CommandFailed, Refused, UsageError, report_failure
from gateway.config import Config
from gateway.store import Conflict, InvalidValue, NotFound, Store, StoreError, open_store

# A command makes a handful of queries one after another: more connections buy nothing.
CLI_POOL_SIZE = 2

Body = Callable[[argparse.Namespace, "CommandSession"], Awaitable[int]]
Handler = Callable[[argparse.Namespace, Config], Awaitable[int]]


@dataclass(frozen=True)
class CommandSession:
    config: Config
    store: Store
    accounts: Accounts


async def open_configured_store(config: Config, *, migrate: bool = True) -> Store:
    """The store the config names; a URL the store cannot use is a usage error (exit 2)."""
    try:
        return await open_store(
            config.store.url,
            data_dir=config.runtime.data_dir,
            password=config.store.password.value if config.store.password else None,
            pool_size=min(config.store.pool_size, CLI_POOL_SIZE),
            poll_interval=config.store.poll_interval,
            migrate=migrate,
        )
    except InvalidValue as exc:
        raise UsageError(f"config error: {config.source}: {exc}") from None
    except (OSError, asyncpg.PostgresError) as exc:
        raise Refused(f"cannot open the store: {exc}", "unavailable") from None


@contextlib.asynccontextmanager
async def command_session(config: Config) -> AsyncIterator[CommandSession]:
    store = await open_configured_store(config)
    hasher = hasher_for(config.auth)
    audit = AuditLog(store.audit)
    try:
        # Who ran the command, for the audit trail; the CLI has no network source.
        accounts = Accounts(store, hasher, audit, door="cli", source=f"local:{_operator()}")
        yield CommandSession(config, store, accounts)
    finally:
        try:
            await audit.close()
        finally:
            hasher.close()
            await store.close()


def store_command(body: Body) -> Handler:
    @functools.wraps(body)
    async def handler(args: argparse.Namespace, config: Config) -> int:
        as_json = bool(getattr(args, "json", False))
        try:
            async with command_session(config) as session:
                return await body(args, session)
        except CommandFailed as exc:
            return report_failure(exc, as_json=as_json)
        except StoreError as exc:
            return report_failure(Refused(str(exc), _kind(exc)), as_json=as_json)

    return handler


def _kind(error: StoreError) -> str:
    if isinstance(error, NotFound):
        return "not_found"
    if isinstance(error, Conflict):
        return "conflict"
    if isinstance(error, InvalidValue):
        return "invalid"
    return "refused"


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
