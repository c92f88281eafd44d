"""Apps the platform runs, their access restriction and per-addon credentials."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from gateway.store import validation
from gateway.store.changes import Change
from gateway.store.database import Database, Transaction
from gateway.store.errors import Conflict, NotFound
from gateway.store.models import AccessRestriction, App

_COLUMNS = (
    "id, location, domain, manifest_json, upstream, access_json, sso, address, created_at"
)
_UNSET: Any = object()


class Apps:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self,
        *,
        location: str,
        domain: str,
        manifest: dict[str, Any],
        upstream: str | None = None,
        access: AccessRestriction | None = None,
        sso: bool = True,
        app_id: str | None = None,
    ) -> App:
        app_id = app_id or str(uuid.uuid4())
        location = location.strip().lower()
        domain = validation.domain(domain)
        async with self._db.transaction() as tx:
            if await tx.fetchrow(
                "SELECT 1 FROM apps WHERE location = $1 AND domain = $2", location, domain
            ):
                raise Conflict(f"{location}.{domain} is taken by another app")
            await tx.execute(
                f"INSERT INTO apps ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8)",
                app_id, location, domain, json.dumps(manifest), upstream,
                access.to_json() if access is not None else None, sso, time.time(),
            )
            tx.changed(Change("app", app_id))
        return await self.get(app_id)

    async def get(self, app_id: str) -> App:
        row = await self._db.fetchrow(f"SELECT {_COLUMNS} FROM apps WHERE id = $1", app_id)
        if row is None:
            raise NotFound("app", app_id)
        return App.from_row(row)

    async def list(self) -> list[App]:
        rows = await self._db.fetch(f"SELECT {_COLUMNS} FROM apps ORDER BY domain, location")
        return [App.from_row(r) for r in rows]

    async def update(
        self,
        app_id: str,
        *,
        manifest: dict[str, Any] = _UNSET,
        upstream: str | None = _UNSET,
        access: AccessRestriction | None = _UNSET,
        address: str | None = _UNSET,
    ) -> App:
        sets: dict[str, Any] = {}
        if address is not _UNSET:
            sets["address"] = address
        if manifest is not _UNSET:
            sets["manifest_json"] = json.dumps(manifest)
        if upstream is not _UNSET:
            sets["upstream"] = upstream
        if access is not _UNSET:
            sets["access_json"] = access.to_json() if access is not None else None
        if sets:
            names = sorted(sets)
            assignments = ", ".join(f"{n} = ${i}" for i, n in enumerate(names, start=2))
            async with self._db.transaction() as tx:
                if not await tx.execute(
                    f"UPDATE apps SET {assignments} WHERE id = $1",
                    app_id, *(sets[n] for n in names),
                ):
                    raise NotFound("app", app_id)
                tx.changed(Change("app", app_id))
        return await self.get(app_id)

    async def remove(self, app_id: str) -> None:
        """Remove the app with its credentials, app passwords and sessions."""
        async with self._db.transaction() as tx:
            users = await tx.fetch(
                "SELECT DISTINCT user_id FROM app_passwords WHERE identifier = $1", app_id
            )
            await tx.execute("DELETE FROM app_passwords WHERE identifier = $1", app_id)
            sessions = await tx.execute("DELETE FROM web_sessions WHERE app_id = $1", app_id)
            if not await tx.execute("DELETE FROM apps WHERE id = $1", app_id):
                raise NotFound("app", app_id)
            tx.changed(Change("app", app_id))
            for row in users:
                tx.changed(Change("app_password", row["user_id"]))
            if sessions:
                tx.changed(Change("session", f"app:{app_id}"))

    # -- addon credentials ----------------------------------------------------------------

    async def set_credentials(self, app_id: str, addon: str, values: dict[str, str]) -> None:
        async with self._db.transaction() as tx:
            if not await tx.fetchrow("SELECT 1 FROM apps WHERE id = $1", app_id):
                raise NotFound("app", app_id)
            await self._replace_credentials(tx, app_id, addon, values)
            tx.changed(Change("app", app_id))

    @staticmethod
    async def _replace_credentials(
        tx: Transaction, app_id: str, addon: str, values: dict[str, str]
    ) -> None:
        await tx.execute(
            "DELETE FROM addon_credentials WHERE app_id = $1 AND addon = $2", app_id, addon
        )
        await tx.executemany(
            "INSERT INTO addon_credentials (app_id, addon, name, value) VALUES ($1, $2, $3, $4)",
            [(app_id, addon, k, v) for k, v in sorted(values.items())],
        )

    async def credentials(self, app_id: str, addon: str) -> dict[str, str]:
        rows = await self._db.fetch(
            "SELECT name, value FROM addon_credentials WHERE app_id = $1 AND addon = $2",
            app_id, addon,
        )
        return {r["name"]: r["value"] for r in rows}

    async def all_credentials(self, app_id: str) -> dict[str, dict[str, str]]:
        rows = await self._db.fetch(
            "SELECT addon, name, value FROM addon_credentials WHERE app_id = $1", app_id
        )
        found: dict[str, dict[str, str]] = {}
        for r in rows:
            found.setdefault(r["addon"], {})[r["name"]] = r["value"]
        return found

    async def find_by_credential(self, addon: str, name: str, value: str) -> str | None:
        """The app whose ``addon`` credential ``name`` equals ``value`` (e.g. a mail login)."""
        row = await self._db.fetchrow(
            "SELECT app_id FROM addon_credentials WHERE addon = $1 AND name = $2 AND value = $3",
            addon, name, value,
        )
        return row["app_id"] if row else None
