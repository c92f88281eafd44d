"""Who a successful login proved to be."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Method = Literal["password", "app_password", "password+totp", "app_secret"]


@dataclass(frozen=True)
class UserIdentity:
    user_id: str
    username: str | None
    email: str
    display_name: str
    role: str
    group_ids: tuple[str, ...]
    group_names: tuple[str, ...]
    method: Method

    @property
    def is_admin(self) -> bool:
        return self.role in ("owner", "admin")


@dataclass(frozen=True)
class AppIdentity:
    app_id: str
    addon: str
    principal: str
    method: Method = "app_secret"


Identity = UserIdentity | AppIdentity
