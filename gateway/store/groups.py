"""Groups and who is in them."""

from __future__ import annotations

import builtins
import time
import uuid

from gateway.store import validation
from gateway.store.changes import Change
from gateway.store.database import Database
from gateway.store.errors import Conflict, NotFound
from gateway.store.models import Group


class Groups:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, name: str) -> Group:
        clean = validation.group_name(name)
        group_id = f"gid-{uuid.uuid4()}"
        async with self._db.transaction() as tx:
            if await tx.fetchrow("SELECT 1 FROM groups_ WHERE name = $1", clean):
                raise Conflict(f"group {clean!r} exists")
            await tx.execute(
                "INSERT INTO groups_ (id, name, created_at) VALUES ($1, $2, $3)",
                group_id, clean, time.time(),
            )
            tx.changed(Change("group", group_id))
        return await self.get(group_id)

    async def get(self, group_id: str) -> Group:
        row = await self._db.fetchrow(
            "SELECT id, name, created_at FROM groups_ WHERE id = $1", group_id
        )
        if row is None:
            raise NotFound("group", group_id)
        return Group.from_row(row)

    async def resolve(self, name_or_id: str) -> Group:
        row = await self._db.fetchrow(
            "SELECT id, name, created_at FROM groups_ WHERE id = $1 OR name = $2",
            name_or_id, name_or_id.strip().lower(),
        )
        if row is None:
            raise NotFound("group", name_or_id)
        return Group.from_row(row)

    async def list(self) -> list[Group]:
        rows = await self._db.fetch("SELECT id, name, created_at FROM groups_ ORDER BY name")
        return [Group.from_row(r) for r in rows]

    async def remove(self, group_id: str) -> None:
        async with self._db.transaction() as tx:
            members = await tx.fetch(
                "SELECT user_id FROM group_members WHERE group_id = $1", group_id
            )
            if not await tx.execute("DELETE FROM groups_ WHERE id = $1", group_id):
                raise NotFound("group", group_id)
            tx.changed(Change("group", group_id))
            # Members lose whatever access the group gave them.
            for row in members:
                tx.changed(Change("user", row["user_id"]))

    async def add_member(self, group_id: str, user_id: str) -> None:
        async with self._db.transaction() as tx:
            if not await tx.fetchrow("SELECT 1 FROM groups_ WHERE id = $1", group_id):
                raise NotFound("group", group_id)
            if not await tx.fetchrow("SELECT 1 FROM users WHERE id = $1", user_id):
                raise NotFound("user", user_id)
            await tx.execute(
                "INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) "
                "ON CONFLICT (group_id, user_id) DO NOTHING",
                group_id, user_id,
            )
            tx.changed(Change("group", group_id))
            tx.changed(Change("user", user_id))

    async def remove_member(self, group_id: str, user_id: str) -> None:
        async with self._db.transaction() as tx:
            removed = await tx.execute(
                "DELETE FROM group_members WHERE group_id = $1 AND user_id = $2",
                group_id, user_id,
            )
            if not removed:
                raise NotFound("membership", f"{user_id} in {group_id}")
            tx.changed(Change("group", group_id))
            tx.changed(Change("user", user_id))

    async def members(self, group_id: str) -> builtins.list[str]:
        rows = await self._db.fetch(
            "SELECT user_id FROM group_members WHERE group_id = $1 ORDER BY user_id", group_id
        )
        return [r["user_id"] for r in rows]

    async def of_user(self, user_id: str) -> builtins.list[Group]:
        rows = await self._db.fetch(
            "SELECT g.id, g.name, g.created_at FROM groups_ g "
            "JOIN group_members m ON m.group_id = g.id WHERE m.user_id = $1 ORDER BY g.name",
            user_id,
        )
        return [Group.from_row(r) for r in rows]

    async def memberships(self) -> builtins.list[tuple[str, str]]:
        """Every (group id, user id) pair, for building in-memory indexes in one query."""
        rows = await self._db.fetch("SELECT group_id, user_id FROM group_members")
        return [(r["group_id"], r["user_id"]) for r in rows]
