"""The configuration schema: frozen dataclasses whose fields are the TOML keys.

Each field's ``metadata`` carries its documentation and bounds; ``config.example.toml`` is
checked against this schema by the tests, so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gateway.config.containers import ContainersConfig
from gateway.config.fields import doc as _doc
from gateway.config.ldap import LdapConfig
from gateway.config.mail import MailConfig
from gateway.config.proxyauth import ProxyAuthConfig
from gateway.config.ratelimit import RateLimitConfig


@dataclass(frozen=True)
class Secret:
    """A secret value that never prints itself (logs, reprs, tracebacks)."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True)
class ListenAddress:
    """A host and port to listen on; port 0 asks the kernel for a free one."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> ListenAddress:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"expected HOST:PORT, got {text!r}")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ValueError(f"port must be a number from 0 to 65535, got {port_text!r}")
        return cls(host, int(port_text))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class StoreConfig:
    url: str = field(
        default="sqlite:///gateway.db",
        metadata=_doc(
            "Where users, groups, apps and mail data live. sqlite:///FILE (relative to "
            "runtime.data_dir) or postgresql://USER@HOST:PORT/DB for several nodes."
        ),
    )
    password: Secret | None = field(
        default=None,
        metadata=_doc("PostgreSQL password, kept out of the URL (or password_file)."),
    )
    pool_size: int = field(
        default=10, metadata=_doc("PostgreSQL connections per node.", min=1, max=200)
    )
    poll_interval: float = field(
        default=0.25,
        metadata=_doc(
            "SQLite only: how often (seconds) a server looks for changes written by other "
            "processes such as the CLI. PostgreSQL pushes them with LISTEN/NOTIFY.",
            min=0.01,
            max=10.0,
        ),
    )


@dataclass(frozen=True)
class AuthConfig:
    totp_window: int = field(
        default=1,
        metadata=_doc(
            "TOTP steps accepted either side of now (30 s each). Cloudron accepted 2.",
            min=0,
            max=2,
        ),
    )
    cache_ttl: float = field(
        default=60.0,
        metadata=_doc(
            "Seconds a verified password is remembered (keyed hash only), so repeated "
            "binds skip hashing. Changes invalidate it at once. 0 turns it off.",
            min=0.0,
            max=3600.0,
        ),
    )
    cache_size: int = field(
        default=100_000, metadata=_doc("Most verified results kept.", min=0, max=10_000_000)
    )
    secret_key: Secret | None = field(
        default=None,
        metadata=_doc(
            "Key for keyed hashes of secrets (cache, rate-limit counters). Unset: one is "
            "generated and kept in the store, shared by every node (or secret_key_file)."
        ),
    )
    argon2_time_cost: int = field(
        default=2, metadata=_doc("argon2id passes for new hashes (OWASP: 2).", min=1, max=20)
    )
    argon2_memory_kib: int = field(
        default=19456,
        metadata=_doc("argon2id memory for new hashes, KiB (OWASP: 19456).", min=1024),
    )
    argon2_parallelism: int = field(
        default=1, metadata=_doc("argon2id lanes for new hashes.", min=1, max=16)
    )
    hash_workers: int = field(
        default=2,
        metadata=_doc("Threads that hash passwords off the event loop.", min=1, max=64),
    )


@dataclass(frozen=True)
class RuntimeConfig:
    data_dir: Path = field(
        default=Path("data"),
        metadata=_doc("Directory for the SQLite store, keys and spools (relative: to the cwd)."),
    )
    shutdown_grace: float = field(
        default=10.0,
        metadata=_doc(
            "Seconds in-flight work may take to finish after SIGTERM.", min=0.0, max=600.0
        ),
    )
    uvloop: bool = field(default=True, metadata=_doc("Use uvloop when it is installed."))


@dataclass(frozen=True)
class AdminConfig:
    enabled: bool = field(default=True, metadata=_doc("Serve /healthz and /metrics."))
    listen: ListenAddress = field(
        default=ListenAddress("127.0.0.1", 9180),
        metadata=_doc("Address of the admin endpoint; keep it private."),
    )


@dataclass(frozen=True)
class LogConfig:
    level: Literal["debug", "info", "warning", "error"] = field(
        default="info", metadata=_doc("Least severe level written.")
    )
    format: Literal["json", "text"] = field(
        default="json", metadata=_doc("json: one object per line on stdout; text: for people.")
    )


@dataclass(frozen=True)
class DemoConfig:
    enabled: bool = field(
        default=True,
        metadata=_doc(
            "On first start with an empty store, create an admin `demo` with a generated "
            "password printed once."
        ),
    )
    username: str = field(default="demo", metadata=_doc("Username of the demo admin."))
    app_location: str = field(
        default="demo",
        metadata=_doc(
            "With [containers] enabled and no apps yet, a demo app is installed at "
            "<app_location>.<app_domain> behind the login wall (empty: no demo app)."
        ),
    )
    app_domain: str = field(
        default="apps.localhost",
        metadata=_doc(
            "Domain of the demo app. Browsers resolve *.localhost to this machine, so "
            "http://demo.apps.localhost:8080/ reaches it through the wall."
        ),
    )
    app_port: int = field(
        default=8001,
        metadata=_doc("Loopback port the demo app listens on.", min=1024, max=65535),
    )


@dataclass(frozen=True)
class Config:
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    log: LogConfig = field(default_factory=LogConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    ratelimit: RateLimitConfig = field(default_factory=RateLimitConfig)
    containers: ContainersConfig = field(default_factory=ContainersConfig)
    ldap: LdapConfig = field(default_factory=LdapConfig)
    proxyauth: ProxyAuthConfig = field(default_factory=ProxyAuthConfig)
    mail: MailConfig = field(default_factory=MailConfig)
    source: str = field(default="<defaults>", metadata={"internal": True})

    def data_path(self, name: str) -> Path:
        return self.runtime.data_dir / name
