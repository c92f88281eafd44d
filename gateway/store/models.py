"""What the store holds, as frozen records. Rows become these at the store's edge."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["owner", "admin", "usermanager", "mailmanager", "user"]
ROLES: tuple[Role, ...] = ("owner", "admin", "usermanager", "mailmanager", "user")
ADMIN_ROLES: frozenset[str] = frozenset({"owner", "admin"})


@dataclass(frozen=True)
class User:
    id: str
    username: str | None
    email: str
    fallback_email: str
    display_name: str
    active: bool
    role: Role
    password_hash: str = field(repr=False)
    totp_secret: str | None = field(repr=False)
    totp_enabled: bool
    totp_last_step: int | None
    ldap_totp: bool
    created_at: float
    modified_at: float

    @property
    def is_admin(self) -> bool:
        return self.role in ADMIN_ROLES

    @property
    def name_for_display(self) -> str:
        return self.display_name or self.username or self.email

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> User:
        return cls(
            id=row["id"],
            username=row["username"],
            email=row["email"],
            fallback_email=row["fallback_email"],
            display_name=row["display_name"],
            active=bool(row["active"]),
            role=row["role"],
            password_hash=row["password_hash"],
            totp_secret=row["totp_secret"],
            totp_enabled=bool(row["totp_enabled"]),
            totp_last_step=row["totp_last_step"],
            ldap_totp=bool(row["ldap_totp"]),
            created_at=row["created_at"],
            modified_at=row["modified_at"],
        )


@dataclass(frozen=True)
class Group:
    id: str
    name: str
    created_at: float

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Group:
        return cls(id=row["id"], name=row["name"], created_at=row["created_at"])


@dataclass(frozen=True)
class AccessRestriction:
    """Who may use an app besides admins. ``None`` on the app means everyone."""

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps({"users": list(self.users), "groups": list(self.groups)})

    @classmethod
    def from_json(cls, text: str | None) -> AccessRestriction | None:
        if text is None:
            return None
        data = json.loads(text)
        return cls(users=tuple(data.get("users", ())), groups=tuple(data.get("groups", ())))


@dataclass(frozen=True)
class App:
    id: str
    location: str
    domain: str
    manifest: dict[str, Any] = field(compare=False)
    upstream: str | None
    access: AccessRestriction | None
    sso: bool
    address: str | None
    created_at: float

    @property
    def fqdn(self) -> str:
        return f"{self.location}.{self.domain}" if self.location else self.domain

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> App:
        return cls(
            id=row["id"],
            location=row["location"],
            domain=row["domain"],
            manifest=json.loads(row["manifest_json"]),
            upstream=row["upstream"],
            access=AccessRestriction.from_json(row["access_json"]),
            sso=bool(row["sso"]),
            address=row["address"],
            created_at=row["created_at"],
        )


AppBackend = Literal["docker", "local", "external"]
APP_BACKENDS: tuple[AppBackend, ...] = ("docker", "local", "external")


@dataclass(frozen=True)
class AppLaunch:
    """What runs an app: an image (docker), a command (local) or nothing (external)."""

    backend: AppBackend
    image: str | None = None
    command: tuple[str, ...] = ()


@dataclass(frozen=True)
class AppRuntime:
    """How an app is run (``launch``, ``generation``) and what was last seen of it."""

    app_id: str
    launch: AppLaunch
    generation: int
    state: str
    health: str
    detail: str | None
    health_detail: str | None
    container_id: str | None
    updated_at: float

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AppRuntime:
        return cls(
            app_id=row["app_id"],
            launch=AppLaunch(
                backend=row["backend"],
                image=row["image"],
                command=tuple(json.loads(row["command_json"])),
            ),
            generation=int(row["generation"]),
            state=row["state"],
            health=row["health"],
            detail=row["detail"],
            health_detail=row["health_detail"],
            container_id=row["container_id"],
            updated_at=row["updated_at"],
        )


@dataclass(frozen=True)
class AppPassword:
    """A per-client password of one user, valid only for ``identifier`` (an app id or ``mail``)."""

    id: str
    user_id: str
    name: str
    identifier: str
    password_hash: str = field(repr=False)
    created_at: float

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AppPassword:
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            name=row["name"],
            identifier=row["identifier"],
            password_hash=row["password_hash"],
            created_at=row["created_at"],
        )


@dataclass(frozen=True)
class MailDomain:
    domain: str
    receives: bool
    masquerade: bool
    dkim_selector: str
    dkim_private_key: str | None = field(repr=False)
    relay: dict[str, Any] = field(compare=False)
    catch_all: tuple[str, ...]
    created_at: float

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> MailDomain:
        return cls(
            domain=row["domain"],
            receives=bool(row["receives"]),
            masquerade=bool(row["masquerade"]),
            dkim_selector=row["dkim_selector"],
            dkim_private_key=row["dkim_private_key"],
            relay=json.loads(row["relay_json"]),
            catch_all=tuple(json.loads(row["catch_all_json"])),
            created_at=row["created_at"],
        )


MailboxKind = Literal["mailbox", "alias", "list"]
OwnerType = Literal["user", "group", "app"]


@dataclass(frozen=True)
class Mailbox:
    """A mailbox, an alias of one, or a list, all named ``name@domain``."""

    name: str
    domain: str
    kind: MailboxKind
    owner_id: str | None
    owner_type: OwnerType
    alias_target: str | None
    members: tuple[str, ...]
    active: bool
    quota_bytes: int
    created_at: float

    @property
    def address(self) -> str:
        return f"{self.name}@{self.domain}"

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Mailbox:
        return cls(
            name=row["name"],
            domain=row["domain"],
            kind=row["kind"],
            owner_id=row["owner_id"],
            owner_type=row["owner_type"],
            alias_target=row["alias_target"],
            members=tuple(json.loads(row["members_json"])),
            active=bool(row["active"]),
            quota_bytes=row["quota_bytes"],
            created_at=row["created_at"],
        )


@dataclass(frozen=True)
class AuditEvent:
    """One thing that happened at a door. ``reason`` explains a failure; no secret ever."""

    action: str
    door: str
    at: float
    source: str | None = None
    app_id: str | None = None
    user_id: str | None = None
    login: str | None = None
    reason: str | None = None
    data: dict[str, Any] = field(default_factory=dict, compare=False)
    id: str = ""

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AuditEvent:
        return cls(
            id=row["id"],
            action=row["action"],
            door=row["door"],
            at=row["at"],
            source=row["source"],
            app_id=row["app_id"],
            user_id=row["user_id"],
            login=row["login"],
            reason=row["reason"],
            data=json.loads(row["data_json"]),
        )


@dataclass(frozen=True)
class WebSession:
    """Server-side state of a login-wall session; the cookie holds only the opaque id."""

    id: str
    user_id: str
    app_id: str | None
    created_at: float
    last_seen: float
    expires_at: float
    data: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> WebSession:
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            app_id=row["app_id"],
            created_at=row["created_at"],
            last_seen=row["last_seen"],
            expires_at=row["expires_at"],
            data=json.loads(row["data_json"]),
        )
