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
from gateway.store.models import AccessRestriction, App, AppLaunch, AppRuntime

_COLUMNS = (
    "id, location, domain, manifest_json, upstream, access_json, sso, address, created_at"
)
_RUNTIME_COLUMNS = (
    "app_id, backend, image, command_json, generation, state, health, detail, health_detail, "
    "container_id, updated_at"
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
        launch: AppLaunch | None = None,
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
            if launch is not None:
                await self._insert_runtime(tx, app_id, launch)
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
        location: str = _UNSET,
        domain: str = _UNSET,
    ) -> App:
        sets: dict[str, Any] = {}
        if location is not _UNSET:
            sets["location"] = location.strip().lower()
        if domain is not _UNSET:
            sets["domain"] = validation.domain(domain)
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
                if "location" in sets or "domain" in sets:
                    await self._check_address_free(tx, app_id, sets)
                if not await tx.execute(
                    f"UPDATE apps SET {assignments} WHERE id = $1",
                    app_id, *(sets[n] for n in names),
                ):
                    raise NotFound("app", app_id)
                tx.changed(Change("app", app_id))
        return await self.get(app_id)

    @staticmethod
    async def _check_address_free(tx: Transaction, app_id: str, sets: dict[str, Any]) -> None:
        """A move to another location or domain must not land on another app."""
        row = await tx.fetchrow("SELECT location, domain FROM apps WHERE id = $1", app_id)
        if row is None:
            raise NotFound("app", app_id)
        location = sets.get("location", row["location"])
        domain = sets.get("domain", row["domain"])
        if await tx.fetchrow(
            "SELECT 1 FROM apps WHERE location = $1 AND domain = $2 AND id <> $3",
            location, domain, app_id,
        ):
            raise Conflict(f"{location}.{domain} is taken by another app")

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

    async def credential_values(self, addon: str, name: str) -> set[str]:
        """Every app's value of one credential (e.g. the LDAP addresses handed out)."""
        rows = await self._db.fetch(
            "SELECT value FROM addon_credentials WHERE addon = $1 AND name = $2", addon, name
        )
        return {r["value"] for r in rows}

    # -- runtime: how an app is run, and what was seen of it -------------------------------

    @staticmethod
    async def _insert_runtime(tx: Transaction, app_id: str, launch: AppLaunch) -> None:
        await tx.execute(
            f"INSERT INTO app_runtime ({_RUNTIME_COLUMNS}) "
            "VALUES ($1, $2, $3, $4, 0, 'installing', 'unknown', NULL, NULL, NULL, $5)",
            app_id, launch.backend, launch.image, json.dumps(list(launch.command)), time.time(),
        )

    async def runtime(self, app_id: str) -> AppRuntime | None:
        row = await self._db.fetchrow(
            f"SELECT {_RUNTIME_COLUMNS} FROM app_runtime WHERE app_id = $1", app_id
        )
        return AppRuntime.from_row(row) if row else None

    async def runtimes(self) -> dict[str, AppRuntime]:
        rows = await self._db.fetch(f"SELECT {_RUNTIME_COLUMNS} FROM app_runtime")
        return {r["app_id"]: AppRuntime.from_row(r) for r in rows}

    async def set_launch(self, app_id: str, launch: AppLaunch) -> None:
        """Run the app differently (another image, command or upstream); announced."""
        async with self._db.transaction() as tx:
            if not await tx.execute(
                "UPDATE app_runtime SET backend = $2, image = $3, command_json = $4, "
                "updated_at = $5 WHERE app_id = $1",
                app_id, launch.backend, launch.image, json.dumps(list(launch.command)),
                time.time(),
            ):
                raise NotFound("app runtime", app_id)
            tx.changed(Change("app", app_id))

    async def request_restart(self, app_id: str) -> int:
        """Ask whoever runs the app to recreate it; answers the new generation. Announced."""
        async with self._db.transaction() as tx:
            if not await tx.execute(
                "UPDATE app_runtime SET generation = generation + 1 WHERE app_id = $1", app_id
            ):
                raise NotFound("app runtime", app_id)
            row = await tx.fetchrow(
                "SELECT generation FROM app_runtime WHERE app_id = $1", app_id
            )
            tx.changed(Change("app", app_id))
        assert row is not None
        return int(row["generation"])

    async def record_runtime(
        self,
        app_id: str,
        *,
        state: str = _UNSET,
        health: str = _UNSET,
        detail: str | None = _UNSET,
        health_detail: str | None = _UNSET,
        container_id: str | None = _UNSET,
        announce: bool = False,
    ) -> bool:
        """Write what was seen of a running app. Not announced unless asked: it is an
        observation, no index depends on it, and a health flip must not wake every server.
        (An install announces the end of its provisioning, which the service waits for.)
        Answers whether the app still has a runtime row (it may have been uninstalled)."""
        sets: dict[str, Any] = {"updated_at": time.time()}
        for name, value in (
            ("state", state), ("health", health), ("detail", detail),
            ("health_detail", health_detail), ("container_id", container_id),
        ):
            if value is not _UNSET:
                sets[name] = value
        names = sorted(sets)
        assignments = ", ".join(f"{n} = ${i}" for i, n in enumerate(names, start=2))
        sql = f"UPDATE app_runtime SET {assignments} WHERE app_id = $1"
        values = [sets[n] for n in names]
        if not announce:
            return bool(await self._db.execute(sql, app_id, *values))
        async with self._db.transaction() as tx:
            touched = await tx.execute(sql, app_id, *values)
            if touched:
                tx.changed(Change("app", app_id))
        return bool(touched)
