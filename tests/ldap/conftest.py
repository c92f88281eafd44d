"""Fixtures of the LDAP tests: a populated world on SQLite (the index logic is the same on
both engines; ``test_sync`` runs on PostgreSQL too)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.store import open_store
from gateway.store.models import AccessRestriction
from tests.ldap.world import World, start_world


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator:
    store = await open_store(f"sqlite:///{tmp_path / 'store.db'}", data_dir=tmp_path)
    try:
        yield store
    finally:
        await store.close()


async def populate(world: World) -> World:
    await world.add_user("alice", display_name="Alice Example", role="admin")
    await world.add_user("bob", display_name="Bob Builder")
    await world.add_user("carol", display_name="Carol Anna Singer")
    await world.add_user("dave")  # no display name: displayname falls back to the username
    await world.add_group("staff", "bob", "carol")
    await world.add_app("wiki")  # everyone may use it
    await world.add_app(
        "vault", access=AccessRestriction(users=(world.users["bob"].id,), groups=())
    )
    await world.add_app("admins-only", access=AccessRestriction(users=(), groups=()))
    await world.add_app(
        "staffapp", access=AccessRestriction(users=(), groups=(world.groups["staff"],))
    )
    await world.settled()
    return world


@pytest.fixture
async def world(sqlite_store, tmp_path: Path) -> AsyncIterator[World]:
    w = await start_world(sqlite_store, tmp_path)
    try:
        yield await populate(w)
    finally:
        await w.server.stop(1.0)
        await w.audit.close()
