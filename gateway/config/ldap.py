"""The [ldap] section: the directory apps bind against."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# model.py imports this module before it defines ListenAddress and Secret, so the names are
# reached through the module object: it is bound at once (even half-initialised) and its
# attributes are only read later, when a default is built or a type hint is resolved.
import gateway.config.model as model
from gateway.config.fields import doc


def _default_listen() -> list[model.ListenAddress]:
    return [model.ListenAddress("127.0.0.1", 3002)]


@dataclass(frozen=True)
class LdapConfig:
    enabled: bool = field(default=True, metadata=doc("Serve the LDAP directory."))
    listen: list[model.ListenAddress] = field(
        default_factory=_default_listen,
        metadata=doc(
            "Plain LDAP (StartTLS when a certificate is set) listeners. Cloudron used port "
            "3002; unprivileged and loopback by default. Each app with an LDAP endpoint of its "
            "own (addon credential `server`) is listened on as well, as apps come and go."
        ),
    )
    listen_ldaps: list[model.ListenAddress] = field(
        default_factory=list,
        metadata=doc(
            "LDAPS (TLS from the first byte) listeners, e.g. 0.0.0.0:636; needs tls_cert."
        ),
    )
    base_dn: str = field(
        default="dc=cloudron",
        metadata=doc("Root of the tree. Apps were packaged against dc=cloudron."),
    )
    tls_cert: Path | None = field(
        default=None,
        metadata=doc(
            "PEM certificate (chain) for StartTLS and LDAPS. `gateway ldap cert` writes a "
            "self-signed one for development."
        ),
    )
    tls_key: Path | None = field(default=None, metadata=doc("PEM private key of tls_cert."))
    max_pdu_bytes: int = field(
        default=262_144,
        metadata=doc(
            "Largest request accepted, in bytes; a bigger one gets a Notice of Disconnection. "
            "slapd's default for anonymous clients is the same 256 KiB.",
            min=1024,
            max=64 * 1024 * 1024,
        ),
    )
    size_limit: int = field(
        default=0,
        metadata=doc(
            "Most entries one search returns (0: no limit, as Cloudron; a client's own "
            "sizeLimit applies when smaller).",
            min=0,
        ),
    )
    time_limit: float = field(
        default=30.0,
        metadata=doc(
            "Seconds one search may take (0: no limit; a client's own timeLimit applies when "
            "smaller).",
            min=0.0,
            max=3600.0,
        ),
    )
    idle_timeout: float = field(
        default=300.0,
        metadata=doc(
            "Seconds a connection may stay without a complete request (or without reading "
            "its answers) before it is closed. 0: never.",
            min=0.0,
            max=86400.0,
        ),
    )
    max_connections: int = field(
        default=10_000,
        metadata=doc("Open connections for the whole server; more are closed at once.", min=1),
    )
    max_connections_per_app: int = field(
        default=500,
        metadata=doc(
            "Open connections per app (or per source address when no app is known); more get "
            "busy (51). Cloudron: 500 per app container. 0: no cap.",
            min=0,
        ),
    )
    max_filter_depth: int = field(
        default=32,
        metadata=doc(
            "Deepest nesting of a search filter; deeper ones get adminLimitExceeded (11).",
            min=2,
            max=200,
        ),
    )
    max_paged_searches: int = field(
        default=8,
        metadata=doc(
            "Simple paged searches one connection may keep open; the oldest is dropped.",
            min=1,
            max=1000,
        ),
    )
    max_pending_output_bytes: int = field(
        default=1_048_576,
        metadata=doc(
            "Answer bytes queued for a client that does not read before the server stops "
            "producing (and reading) for it until it catches up.",
            min=16_384,
        ),
    )
    mail_readers: list[str] = field(
        default_factory=list,
        metadata=doc(
            "Source addresses or CIDR ranges of mail servers allowed to read ou=mailboxes, "
            "ou=mailaliases and ou=mailinglists (apps with the email addon may always)."
        ),
    )
    directory_server: bool = field(
        default=False,
        metadata=doc(
            "Directory-server mode for apps outside the platform: binding as "
            "cn=admin,ou=system,<base_dn> with directory_secret from an allowlisted address "
            "sees every active user and group."
        ),
    )
    directory_secret: model.Secret | None = field(
        default=None,
        metadata=doc("Secret of the directory-server admin bind (or directory_secret_file)."),
    )
    directory_allowlist: list[str] = field(
        default_factory=list,
        metadata=doc("Addresses or CIDR ranges allowed to use directory-server mode."),
    )
    directory_require_tls: bool = field(
        default=True,
        metadata=doc("Directory-server binds only over LDAPS or after StartTLS."),
    )
