"""CloudronManifest.json: the fields the platform acts on, validated once at the door.

A manifest is checked when it is installed or configured, so an app never gets half an
environment because of a typo found at start. Every refusal is a ``ManifestError`` naming
the field (a JSON path such as ``addons.proxyAuth.path``) and the reason. Fields that only
matter to an app store (description, icon, tags…) are kept untouched and not judged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gateway.config.containers import ContainersConfig
from gateway.containers.errors import ManifestError
from gateway.store.models import App

# The addons this suite provides, with the options each takes (name → JSON type).
# proxyAuth is spelled exactly so: Cloudron rejects a lowercase `proxyauth` key, and an app
# packaged against that must not silently lose its login wall here (seed 000, G.2).
ADDON_OPTIONS: Mapping[str, Mapping[str, type]] = MappingProxyType({
    "ldap": {},
    "sendmail": {"optional": bool, "supportsDisplayName": bool, "requiresValidCertificate": bool},
    "recvmail": {},
    "email": {},
    "proxyAuth": {"path": str, "basicAuth": bool, "supportsBearerAuth": bool},
    "localstorage": {"ftp": dict, "sqlite": dict},
})
# Cloudron addons that exist but that this suite does not provide: refused by name, so the
# operator learns the app needs something missing rather than that it misspelt something.
NOT_PROVIDED = frozenset({
    "docker", "mongodb", "mysql", "oauth", "oidc", "postgresql", "redis", "scheduler", "tls",
    "turn",
})
# Addons tied to the install-time sso flag: they cannot be added to an installed app (F.1).
SSO_ADDONS = ("ldap", "proxyAuth")
# Host ports an app may never claim (F.3): the platform's own services and mail.
CLOUDRON_RESERVED_PORTS = frozenset({
    22, 25, 53, 80, 143, 202, 222, 443, 465, 587, 993, 2003, 2004, 2020, 2514, 3000, 3001, 2525,
    3002, 3306, 4190, 8000, 8417,
})
MIN_HOST_PORT = 1024
MANIFEST_VERSIONS = (1, 2)
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class PortSpec:
    """One entry of tcpPorts/udpPorts: the env variable, the host port, the container port."""

    env_name: str
    host_port: int
    container_port: int
    protocol: str


@dataclass(frozen=True)
class Manifest:
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    manifest_version: int
    http_port: int
    health_check_path: str
    addons: Mapping[str, Mapping[str, Any]]
    id: str | None = None
    title: str | None = None
    version: str | None = None
    memory_limit: int | None = None
    optional_sso: bool = False
    docker_image: str | None = None
    ports: tuple[PortSpec, ...] = ()

    @property
    def env_prefix(self) -> str:
        """Version 1 apps get bare names (``MAIL_SMTP_SERVER``), version 2 ``CLOUDRON_…``."""
        return "CLOUDRON_" if self.manifest_version >= 2 else ""

    def has(self, addon: str) -> bool:
        return addon in self.addons

    def options(self, addon: str) -> Mapping[str, Any]:
        return self.addons.get(addon, {})

    def to_json(self) -> dict[str, Any]:
        """The manifest as given (what the store keeps)."""
        return dict(self.raw)


def load_manifest(path: Path, *, reserved_ports: frozenset[int] = frozenset()) -> Manifest:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ManifestError("-", f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError("-", f"{path} is not valid JSON: {exc}") from None
    return parse_manifest(data, reserved_ports=reserved_ports)


def parse_manifest(data: Any, *, reserved_ports: frozenset[int] = frozenset()) -> Manifest:
    """Validate ``data`` (the parsed JSON); ``reserved_ports`` adds the suite's own ports."""
    if not isinstance(data, dict):
        raise ManifestError("-", "must be a JSON object")
    version = _get(data, "manifestVersion", int)
    if version not in MANIFEST_VERSIONS:
        raise ManifestError(
            "manifestVersion", f"must be 1 or 2 (got {version!r}); it decides the env names"
        )
    http_port = _get(data, "httpPort", int)
    if not 1 <= http_port <= 65535:
        raise ManifestError("httpPort", f"must be a port from 1 to 65535 (got {http_port})")
    if http_port in reserved_ports:
        raise ManifestError(
            "httpPort", f"{http_port} is a port the platform tells apps to use for its services"
        )
    health = _get(data, "healthCheckPath", str)
    if not health.startswith("/"):
        raise ManifestError("healthCheckPath", f"must be a path starting with / (got {health!r})")
    memory = _get(data, "memoryLimit", int, required=False)
    if memory is not None and memory < 0:
        raise ManifestError("memoryLimit", f"must be a number of bytes, 0 or more (got {memory})")
    return Manifest(
        raw=MappingProxyType(dict(data)),
        manifest_version=version,
        http_port=http_port,
        health_check_path=health,
        addons=_addons(data.get("addons", {})),
        id=_get(data, "id", str, required=False),
        title=_get(data, "title", str, required=False),
        version=_get(data, "version", str, required=False),
        memory_limit=memory or None,
        optional_sso=bool(_get(data, "optionalSso", bool, required=False)),
        docker_image=_get(data, "dockerImage", str, required=False) or None,
        ports=(
            *_ports(data, "tcpPorts", "tcp", reserved_ports),
            *_ports(data, "udpPorts", "udp", reserved_ports),
        ),
    )


def _get(data: Mapping[str, Any], key: str, kind: type, *, required: bool = True,
         where: str = "") -> Any:
    path = f"{where}{key}"
    if key not in data or data[key] is None:
        if required:
            raise ManifestError(path, "is required")
        return None
    value = data[key]
    # bool is an int to Python, never to a manifest author.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ManifestError(path, f"must be {_type_name(kind)} (got {json.dumps(value)})")
    return value


def _type_name(kind: type) -> str:
    return {int: "a whole number", str: "a string", bool: "true or false",
            dict: "an object"}.get(kind, kind.__name__)


def _addons(value: Any) -> Mapping[str, Mapping[str, Any]]:
    if not isinstance(value, dict):
        raise ManifestError("addons", "must be an object of addon name → options")
    found: dict[str, Mapping[str, Any]] = {}
    for name, options in value.items():
        where = f"addons.{name}"
        if name not in ADDON_OPTIONS:
            raise ManifestError(where, _unknown_addon(name))
        if not isinstance(options, dict):
            raise ManifestError(where, "options must be an object ({} for none)")
        allowed = ADDON_OPTIONS[name]
        for key in options:
            if key not in allowed:
                known = ", ".join(allowed) or "none"
                raise ManifestError(f"{where}.{key}", f"unknown option (known: {known})")
            _get(options, key, allowed[key], required=False, where=f"{where}.")
        found[name] = MappingProxyType(dict(options))
    _check_wall_path(found.get("proxyAuth", {}))
    return MappingProxyType(found)


def _unknown_addon(name: str) -> str:
    for known in ADDON_OPTIONS:
        if name.lower() == known.lower():
            return (
                f"unknown addon {name!r}; addon names are case-sensitive: did you mean {known!r}?"
            )
    if name in NOT_PROVIDED:
        return (
            f"addon {name!r} is not provided by this platform "
            f"(it provides {', '.join(ADDON_OPTIONS)})"
        )
    return f"unknown addon {name!r} (known: {', '.join(ADDON_OPTIONS)})"


def _check_wall_path(options: Mapping[str, Any]) -> None:
    path = options.get("path")
    if path is None or path == "":
        return
    bare = path[1:] if path.startswith("!") else path
    if not bare.startswith("/"):
        raise ManifestError(
            "addons.proxyAuth.path",
            f"must be a path starting with / (or !/ to exempt it), got {path!r}",
        )


def _ports(data: Mapping[str, Any], key: str, protocol: str,
           reserved: frozenset[int]) -> list[PortSpec]:
    table = _get(data, key, dict, required=False) or {}
    specs = []
    for env_name, spec in table.items():
        where = f"{key}.{env_name}"
        if not _ENV_NAME.match(env_name):
            raise ManifestError(where, "the key is an environment variable name (A-Z, 0-9, _)")
        if not isinstance(spec, dict):
            raise ManifestError(where, "must be an object")
        host = _get(spec, "defaultValue", int, where=f"{where}.")
        container = _get(spec, "containerPort", int, required=False, where=f"{where}.") or host
        if not MIN_HOST_PORT <= host <= 65535:
            raise ManifestError(
                f"{where}.defaultValue", f"must be from {MIN_HOST_PORT} to 65535 (got {host})"
            )
        if host in CLOUDRON_RESERVED_PORTS or host in reserved:
            raise ManifestError(f"{where}.defaultValue", f"port {host} is reserved by the platform")
        if not 1 <= container <= 65535:
            raise ManifestError(
                f"{where}.containerPort", f"must be from 1 to 65535 (got {container})"
            )
        specs.append(PortSpec(env_name, host, container, protocol))
    return specs


def manifest_of(app: App, config: ContainersConfig) -> Manifest:
    """The installed app's manifest, checked again against the current config."""
    return parse_manifest(app.manifest, reserved_ports=config.reserved_ports())
