"""Where sessions live: the store (SQLite and PostgreSQL) by default, Redis when configured;
several nodes see one login and one logout; the container manager's routing table.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import redis.asyncio

from gateway.audit import AuditLog
from gateway.config import Config
from gateway.containers.addons import WallRule as ContainerWallRule
from gateway.containers.routing import Route as ContainerRoute
from gateway.containers.routing import RoutingTable
from gateway.metrics import Metrics
from gateway.runtime.server import ServerContext
from gateway.store.sessions import session_key
from proxyauth.server import build
from proxyauth.sessions_redis import DEFAULT_PREFIX
from ratelimit import NoLimits
from tests.proxyauth_support import (
    Wall,
    another_node,
    eventually,
    host,
    new_password,
    plain_client,
    running_wall,
)
from tests.redis_service import redis_server, redis_url  # noqa: F401

pytestmark = pytest.mark.asyncio


async def status(wall: Wall, token: str, app: str = "whole") -> int:
    async with plain_client() as client:
        answer = await client.get(
            wall.url("/"), headers={"Host": host(app), **wall.session_header(token)},
            allow_redirects=False,
        )
        return answer.status


async def test_two_nodes_share_store_sessions(tmp_path: Path, store_url: str) -> None:
    """``store_url`` (conftest) is SQLite, then PostgreSQL.

    A login on one node works on the other; a logout or a password change on one ends the
    session on both at once (the store's change feed empties every node's cache)."""
    async with running_wall(tmp_path, store_url=store_url, change_feed=True) as first, \
            another_node(first, tmp_path, store_url) as second, plain_client() as client:
        token = await first.login(client, "whole", "alice")
        assert await status(first, token) == 200
        assert await status(second, token) == 200  # now cached on the second node too
        await client.get(
            first.url("/logout"),
            headers={"Host": host("whole"), "Sec-Fetch-Site": "same-origin",
                     **first.session_header(token)},
        )
        assert await status(first, token) == 302

        async def second_refuses() -> bool:
            return await status(second, token) == 302

        await eventually(second_refuses)

        again = await second.login(client, "whole", "bob")
        assert await status(first, again) == 200
        await first.accounts.set_password(first.users["bob"], new_password())

        async def ended_everywhere() -> bool:
            return (await status(first, again), await status(second, again)) == (302, 302)

        await eventually(ended_everywhere)


async def test_redis_sessions(tmp_path: Path, redis_url: str) -> None:  # noqa: F811
    async with running_wall(tmp_path, session_storage=redis_url) as wall, \
            plain_client() as client:
        client_redis = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        try:
            token = await wall.login(client, "whole", "alice")
            assert await status(wall, token) == 200
            # Only a hash of the token is a key; nothing in the store's table.
            key = f"{DEFAULT_PREFIX}s:{session_key(token)}"
            stored = await client_redis.hgetall(key)
            assert stored["user_id"] == wall.users["alice"].id
            assert token not in str(stored)
            assert 0 < await client_redis.ttl(key) <= int(wall.config.session_lifetime) + 1
            assert await wall.store.sessions.get(token) is None

            # Logout deletes it.
            await client.get(
                wall.url("/logout"),
                headers={"Host": host("whole"), "Sec-Fetch-Site": "same-origin",
                         **wall.session_header(token)},
            )
            assert not await client_redis.exists(key)
            assert await status(wall, token) == 302

            # A password change ends every session of the user (the change feed says so).
            one = await wall.login(client, "whole", "alice")
            two = await wall.login(client, "staff", "alice")
            await wall.accounts.set_password(wall.users["alice"], new_password())

            async def both_ended() -> bool:
                return (await status(wall, one), await status(wall, two, "staff")) == (302, 302)

            await eventually(both_ended)

            # An uninstalled app's sessions go too.
            carol = await wall.login(client, "admin", "carol", target="/admin")
            await wall.store.apps.remove(wall.apps["admin"].id)

            async def gone() -> bool:
                return not await client_redis.exists(f"{DEFAULT_PREFIX}s:{session_key(carol)}")

            await eventually(gone)
        finally:
            await client_redis.aclose()


async def test_redis_sessions_hold_across_nodes(tmp_path: Path, redis_url: str) -> None:  # noqa: F811
    store_url = f"sqlite:///{tmp_path / 'shared.db'}"
    async with running_wall(
        tmp_path, store_url=store_url, session_storage=redis_url, change_feed=True
    ) as first, another_node(first, tmp_path, store_url) as second, plain_client() as client:
        token = await first.login(client, "whole", "alice")
        assert await status(second, token) == 200
        await client.get(
            second.url("/logout"),
            headers={"Host": host("whole"), "Sec-Fetch-Site": "same-origin",
                     **second.session_header(token)},
        )
        # No cache to empty: the next request on the first node already refuses.
        assert await status(first, token) == 302


async def test_a_dead_redis_fails_the_start_naming_it(tmp_path: Path) -> None:
    from tests.services import free_port

    with pytest.raises(Exception, match=r"(?i)connect|refused"):
        async with running_wall(
            tmp_path, session_storage=f"redis://127.0.0.1:{free_port()}/0"
        ):
            pass


async def test_the_container_managers_routing_table_is_used(tmp_path: Path) -> None:
    """build() reads ctx.extras["routes"] when the container manager put its table there."""
    table = RoutingTable()
    async with running_wall(tmp_path) as wall:
        ctx = ServerContext(
            config=dataclasses.replace(Config(), proxyauth=wall.config), store=wall.store,
            portal=wall.portal, policy=NoLimits(), audit=AuditLog(wall.store.audit),
            metrics=Metrics(), extras={"routes": table},
        )
        managed = build(ctx)
        (address,) = await managed.start()
        try:
            table.put(ContainerRoute(
                host=host("managed"), app_id=wall.apps["whole"].id, upstream=wall.upstream.url,
                wall=ContainerWallRule(path="/private"), access=None, health_check_path="/",
            ))
            node = dataclasses.replace(wall, port=address[1])
            async with plain_client() as client:
                open_path = await client.get(node.url("/public"), headers={"Host": host("managed")})
                assert open_path.status == 200
                walled = await client.get(
                    node.url("/private/x"), headers={"Host": host("managed")},
                    allow_redirects=False,
                )
                assert walled.status == 302
                # Sessions are per app: this route is the "whole" app's id.
                token = await node.login(client, "managed", "alice", target="/private")
                inside = await client.get(
                    node.url("/private/x"),
                    headers={"Host": host("managed"), **node.session_header(token)},
                )
                assert inside.status == 200
                table.drop(wall.apps["whole"].id)
                gone = await client.get(node.url("/public"), headers={"Host": host("managed")})
                assert gone.status == 404
        finally:
            await managed.stop(1.0)
