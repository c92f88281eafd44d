"""Who may use which app, re-checked on every request from facts kept in memory.

A session proves who logged in; whether they may still come in is asked again on each
request: the user must exist and be active, and ``gateway.auth.access.may_use`` must allow
them for the app (admins always; a restriction by users or groups otherwise). The facts are
cached per user and per app and dropped at once when the store's change feed names them,
so a deactivation or a removal from a group holds from the next request on, on every node,
without a store round trip per request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, final

from gateway.auth import UserIdentity
from gateway.auth.access import may_use
from gateway.auth.identity import Method
from gateway.store import NotFound, Store
from gateway.store.changes import Change
from gateway.store.models import AccessRestriction

Verdict = Literal["allowed", "denied", "gone"]
_METHODS: dict[str, Method] = {
    "password": "password", "password+totp": "password+totp", "app_password": "app_password",
}


@dataclass(frozen=True)
class Member:
    """What the wall knows about a user between changes."""

    user_id: str
    username: str | None
    email: str
    display_name: str
    role: str
    active: bool
    is_admin: bool
    group_ids: tuple[str, ...]
    group_names: tuple[str, ...]
    # One identity object per member and method: downstream caches (the identity headers)
    # then hit on every request of that user. Kept here rather than in a cache keyed by
    # the member, which would hash all of these fields on every request.
    _identities: dict[str, UserIdentity] = field(
        default_factory=dict, compare=False, repr=False
    )

    def identity(self, method: str) -> UserIdentity:
        found = self._identities.get(method)
        if found is None:
            found = self._identities[method] = UserIdentity(
                user_id=self.user_id, username=self.username, email=self.email,
                display_name=self.display_name, role=self.role, group_ids=self.group_ids,
                group_names=self.group_names, method=_METHODS.get(method, "password"),
            )
        return found


@dataclass(frozen=True)
class _App:
    access: AccessRestriction | None


_GONE: None = None


@final
class AccessCheck:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._members: dict[str, Member | None] = {}
        self._apps: dict[str, _App | None] = {}
        # Bumped by every change, so a lookup that raced one does not cache old facts.
        self._epoch = 0
        self._unsubscribe: Callable[[], None] | None = None

    async def open(self) -> None:
        self._unsubscribe = self._store.changes.subscribe(self.on_change)

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    async def member(self, user_id: str) -> Member | None:
        if user_id in self._members:
            return self._members[user_id]
        epoch = self._epoch
        try:
            user = await self._store.users.get(user_id)
        except NotFound:
            found: Member | None = None
        else:
            groups = await self._store.groups.of_user(user_id)
            found = Member(
                user_id=user.id, username=user.username, email=user.email,
                display_name=user.name_for_display, role=user.role, active=user.active,
                is_admin=user.is_admin, group_ids=tuple(g.id for g in groups),
                group_names=tuple(g.name for g in groups),
            )
        if epoch == self._epoch:
            self._members[user_id] = found
        return found

    async def _app(self, app_id: str) -> _App | None:
        if app_id in self._apps:
            return self._apps[app_id]
        epoch = self._epoch
        try:
            app = await self._store.apps.get(app_id)
        except NotFound:
            found: _App | None = _GONE
        else:
            found = _App(app.access)
        if epoch == self._epoch:
            self._apps[app_id] = found
        return found

    async def check(self, user_id: str, app_id: str) -> tuple[Verdict, Member | None]:
        """``gone``: no such active user (the session is worthless); ``denied``: a user
        who may not use this app; ``allowed``."""
        member = await self.member(user_id)
        if member is None or not member.active or member.username is None:
            return "gone", member
        app = await self._app(app_id)
        if app is None:
            return "denied", member
        allowed = may_use(
            app.access, user_id=member.user_id, is_admin=member.is_admin,
            group_ids=member.group_ids,
        )
        return ("allowed" if allowed else "denied"), member

    def on_change(self, change: Change) -> None:
        self._epoch += 1
        if change.kind == "user":
            self._members.pop(change.key, None)
        elif change.kind == "app":
            self._apps.pop(change.key, None)
        elif change.kind in ("group", "reset"):
            # Group names ride in every member; group changes are rare: start over.
            self._members.clear()
            if change.kind == "reset":
                self._apps.clear()
