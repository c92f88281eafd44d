"""The [ldap] section: the directory apps bind against."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.config.fields import doc


@dataclass(frozen=True)
class LdapConfig:
    enabled: bool = field(default=False, metadata=doc("Serve the LDAP directory."))
