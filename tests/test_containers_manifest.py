"""CloudronManifest.json validation: every refusal names the field and says why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.config.containers import ContainersConfig
from gateway.containers.errors import ManifestError
from gateway.containers.manifest import (
    ADDON_OPTIONS,
    load_manifest,
    parse_manifest,
)

FIXTURE = Path(__file__).parent / "fixtures" / "CloudronManifest.json"


def base(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "io.example.app", "title": "Example", "version": "1.0.0", "manifestVersion": 2,
        "httpPort": 8000, "healthCheckPath": "/healthz", "addons": {},
    }
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def refusal(data: Any, reserved: frozenset[int] = frozenset()) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(data, reserved_ports=reserved)
    return caught.value


def test_fixture_manifest_is_valid() -> None:
    manifest = load_manifest(FIXTURE)
    assert manifest.manifest_version == 2
    assert manifest.env_prefix == "CLOUDRON_"
    assert set(manifest.addons) == {"ldap", "sendmail", "localstorage", "proxyAuth"}
    assert manifest.options("proxyAuth")["path"] == "/admin"
    assert manifest.to_json() == json.loads(FIXTURE.read_text())


def test_manifest_version_decides_the_prefix() -> None:
    assert parse_manifest(base(manifestVersion=1)).env_prefix == ""
    assert parse_manifest(base(manifestVersion=2)).env_prefix == "CLOUDRON_"
    for bad in (0, 3, "2", True, None):
        error = refusal(base(manifestVersion=bad))
        assert error.field == "manifestVersion"


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("proxyauth", "did you mean 'proxyAuth'"),
        ("LDAP", "did you mean 'ldap'"),
        ("mysql", "not provided by this platform"),
        ("redis", "not provided by this platform"),
        ("frobnicator", "unknown addon 'frobnicator'"),
    ],
)
def test_unknown_addon_is_named(name: str, says: str) -> None:
    error = refusal(base(addons={"ldap": {}, name: {}}))
    assert error.field == f"addons.{name}"
    assert says in error.why
    assert name in str(error)


def test_every_provided_addon_is_accepted() -> None:
    manifest = parse_manifest(base(addons={name: {} for name in ADDON_OPTIONS}))
    assert set(manifest.addons) == set(ADDON_OPTIONS)


@pytest.mark.parametrize(
    ("addons", "field", "says"),
    [
        ({"proxyAuth": {"basicauth": True}}, "addons.proxyAuth.basicauth", "unknown option"),
        ({"proxyAuth": {"basicAuth": "yes"}}, "addons.proxyAuth.basicAuth", "true or false"),
        ({"proxyAuth": {"path": "admin"}}, "addons.proxyAuth.path", "starting with /"),
        ({"proxyAuth": {"path": "!webhooks"}}, "addons.proxyAuth.path", "starting with /"),
        ({"sendmail": {"optional": 1}}, "addons.sendmail.optional", "true or false"),
        ({"ldap": {"anything": 1}}, "addons.ldap.anything", "known: none"),
        ({"ldap": []}, "addons.ldap", "must be an object"),
    ],
)
def test_addon_options_are_checked(addons: dict[str, Any], field: str, says: str) -> None:
    error = refusal(base(addons=addons))
    assert error.field == field
    assert says in error.why


def test_wall_paths_accepted() -> None:
    for path in ("", "/", "/admin", "!/webhooks"):
        assert parse_manifest(base(addons={"proxyAuth": {"path": path}})).has("proxyAuth")


@pytest.mark.parametrize("port", [22, 25, 80, 443, 587, 993, 2525, 3000, 3002, 4190, 8000, 1023])
def test_reserved_and_privileged_ports_are_refused(port: int) -> None:
    error = refusal(base(tcpPorts={"GIT_PORT": {"defaultValue": port, "containerPort": 22}}))
    assert error.field == "tcpPorts.GIT_PORT.defaultValue"


def test_the_suites_own_ports_are_refused() -> None:
    reserved = ContainersConfig().reserved_ports()
    assert {3002, 2525, 2465, 9143, 9993} <= reserved
    error = refusal(base(udpPorts={"X_PORT": {"defaultValue": 9993}}), reserved)
    assert error.field == "udpPorts.X_PORT.defaultValue"
    error = refusal(base(httpPort=3002), reserved)
    assert error.field == "httpPort"


def test_ports_become_specs() -> None:
    manifest = parse_manifest(base(tcpPorts={
        "SSH_PORT": {"title": "SSH", "defaultValue": 29418, "containerPort": 22},
        "IRC_PORT": {"defaultValue": 6667},
    }))
    assert [(p.env_name, p.host_port, p.container_port) for p in manifest.ports] == [
        ("SSH_PORT", 29418, 22), ("IRC_PORT", 6667, 6667),
    ]
    assert refusal(base(tcpPorts={"ssh": {"defaultValue": 29418}})).field == "tcpPorts.ssh"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"httpPort": None}, "httpPort"),
        ({"httpPort": "8000"}, "httpPort"),
        ({"httpPort": True}, "httpPort"),
        ({"httpPort": 70000}, "httpPort"),
        ({"healthCheckPath": None}, "healthCheckPath"),
        ({"healthCheckPath": "healthz"}, "healthCheckPath"),
        ({"memoryLimit": -1}, "memoryLimit"),
        ({"memoryLimit": 1.5}, "memoryLimit"),
        ({"addons": []}, "addons"),
        ({"optionalSso": "yes"}, "optionalSso"),
    ],
)
def test_fields_are_checked(changes: dict[str, Any], field: str) -> None:
    assert refusal(base(**changes)).field == field


def test_memory_limit_and_store_fields_kept() -> None:
    manifest = parse_manifest(base(memoryLimit=512 * 1024 * 1024, description="x", tags=["a"]))
    assert manifest.memory_limit == 512 * 1024 * 1024
    assert manifest.to_json()["tags"] == ["a"]
    assert parse_manifest(base(memoryLimit=0)).memory_limit is None


def test_unreadable_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(bad)
    assert refusal([1, 2]).field == "-"
