"""Real clients for the LDAP tests: OpenLDAP's command-line tools and ldap3, driven from
async tests without blocking the loop the server runs on."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import ldap3
import pytest

T = TypeVar("T")
CLIENT_TIMEOUT = 30.0


@dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: scripts/install --test installs ldap-utils")
    return path


async def shell(command: str, env: dict[str, str]) -> Completed:
    """Run ``command`` with bash as an app's shell would, with ``env`` added."""
    need_tool("ldapsearch")
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", command,
        env={**os.environ, "LDAPTLS_REQCERT": "never", **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), CLIENT_TIMEOUT)
    assert process.returncode is not None
    return Completed(process.returncode, out.decode(), err.decode())


async def run(tool: str, *args: str, env: dict[str, str] | None = None) -> Completed:
    path = need_tool(tool)
    process = await asyncio.create_subprocess_exec(
        path, *args,
        env={**os.environ, "LDAPTLS_REQCERT": "never", **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), CLIENT_TIMEOUT)
    assert process.returncode is not None
    return Completed(process.returncode, out.decode(), err.decode())


async def blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking client call in a thread; the server keeps serving on the loop."""
    return await asyncio.wait_for(asyncio.to_thread(fn, *args), CLIENT_TIMEOUT)


def connect(host: str, port: int, user: str | None = None, password: str | None = None,
            **kwargs: Any) -> ldap3.Connection:
    server = ldap3.Server(host, port=port, get_info=ldap3.NONE, connect_timeout=10)
    conn = ldap3.Connection(server, user=user, password=password, receive_timeout=20,
                            raise_exceptions=False, **kwargs)
    conn.open()
    if user is not None:
        conn.bind()
    return conn


def ldif_entries(text: str) -> list[dict[str, list[str]]]:
    """Entries of ldapsearch's LDIF output (one level, no base64 or folding needed here)."""
    entries: list[dict[str, list[str]]] = []
    current: dict[str, list[str]] | None = None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            current = None
            continue
        if line.startswith(" ") and current is not None:
            continue
        key, _, value = line.partition(":")
        value = value.strip()
        if key == "dn":
            current = {"dn": [value]}
            entries.append(current)
        elif current is not None:
            current.setdefault(key, []).append(value)
    return entries
