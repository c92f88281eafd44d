"""Who may use an app (Cloudron E.6): null means everyone; admins and owners always may."""

from __future__ import annotations

from collections.abc import Iterable

from gateway.store.models import AccessRestriction


def may_use(
    access: AccessRestriction | None, *, user_id: str, is_admin: bool, group_ids: Iterable[str]
) -> bool:
    if access is None or is_admin:
        return True
    if user_id in access.users:
        return True
    return bool(set(access.groups).intersection(group_ids))
