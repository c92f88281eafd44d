"""The directory follows the store: changes are patched in (not rebuilt per request), on
SQLite and PostgreSQL, including writes made by another process (a second Store)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.store import RESET, Store, open_store
from gateway.store.models import AccessRestriction
from tests.ldap.world import World, start_world

WAIT = 10.0


async def until(world: World, condition: object, timeout: float = WAIT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "the directory did not catch up"
        await world.settled()
        await asyncio.sleep(0.02)


async def test_changes_are_patched_in(store: Store, store_url: str, tmp_path: Path) -> None:
    world = await start_world(store, tmp_path)
    index = world.server.index
    try:
        alice = await world.add_user("alice", display_name="Alice Example")
        await world.settled()
        assert index.users[alice.id].entry.attributes["displayname"].values == ("Alice Example",)
        loads = index.generation
        await store.users.update(alice.id, display_name="Alice Changed")
        await world.settled()
        assert index.users[alice.id].entry.attributes["givenname"].values == ("Alice",)
        assert index.users[alice.id].entry.attributes["sn"].values == ("Changed",)
        assert index.generation > loads

        group = await world.add_group("ops", "alice")
        await world.settled()
        memberof = index.users[alice.id].entry.attributes["memberof"].values
        assert "cn=ops,ou=groups,dc=cloudron" in memberof
        assert index.values["memberof"]["cn=ops,ou=groups,dc=cloudron"] == \
            index.users[alice.id].entry.key
        await store.groups.remove(group)
        await world.settled()
        assert "cn=ops,ou=groups,dc=cloudron" not in \
            index.users[alice.id].entry.attributes["memberof"].values

        app = await world.add_app("wiki", access=AccessRestriction(users=(), groups=()))
        assert app.server in index.app_by_server
        assert (app.server, world.port) in world.server.listeners.app_addresses
        await store.apps.remove(app.app.id)
        await world.settled()
        assert app.server not in index.app_by_server
        assert (app.server, world.port) not in world.server.listeners.app_addresses

        # Another process writes: heard through the store's change feed.
        other = await open_store(store_url, data_dir=tmp_path)
        try:
            bob = await other.users.add(username="bob", email="bob@example.com",
                                        password_hash="x")
            await until(world, lambda: bob.id in index.users)
            await other.users.remove(bob.id)
            await until(world, lambda: bob.id not in index.users)
        finally:
            await other.close()

        await store.users.remove(alice.id)
        await world.settled()
        assert alice.id not in index.users
        assert not any(index.values["username"].values())

        store.changes.publish([RESET])
        await world.settled()
        assert index.users == {}
    finally:
        await world.server.stop(1.0)
        await world.audit.close()
