"""What the login-wall tests share: a real upstream app, a real wall on 127.0.0.1:0, real users.

``EchoUpstream`` is a small aiohttp app standing in for an app behind the wall: it answers
with the method, raw path and headers it received, echoes WebSocket messages, counts
streamed upload bytes without keeping them, and streams downloads. ``running_wall`` opens a
SQLite store, builds the portal (cheap argon2), creates users, groups and one app per wall
rule, and starts the real ``ProxyAuthServer`` in front of the upstream.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pyotp
from aiohttp import web

from gateway.accounts import Accounts
from gateway.audit import AuditLog
from gateway.auth import Portal, build_portal
from gateway.config import AuthConfig, ListenAddress
from gateway.config.proxyauth import ProxyAuthConfig
from gateway.metrics import Metrics
from gateway.store import Store, open_store
from gateway.store.models import AccessRestriction, App, User
from proxyauth.metrics import WallMetrics
from proxyauth.routes import StoreRoutes
from proxyauth.server import ProxyAuthServer
from ratelimit import AttemptPolicy, NoLimits

FAST = AuthConfig(argon2_memory_kib=1024, argon2_time_cost=1)
PASSWORD = "correct-horse-battery-7f3a"
WRONG = "wrong-horse-battery-9c1d"
DOMAIN = "example.test"

# app name → (proxyAuth addon or None, access restriction group or None)
APPS: dict[str, dict[str, Any] | None] = {
    "whole": {},
    "admin": {"path": "/admin"},
    "hooks": {"path": "!/webhooks"},
    "basic": {"basicAuth": True},
    "bearer": {"supportsBearerAuth": True},
    "staff": {},
    "plain": None,
    "down": {},
}


def host(app: str) -> str:
    return f"{app}.{DOMAIN}"


class EchoUpstream:
    """The app behind the wall; ``seen`` keeps what each plain request looked like."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.uploaded: list[int] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/_ws", self._ws)
        app.router.add_post("/_upload", self._upload)
        app.router.add_get("/_download", self._download)
        app.router.add_get("/_setcookie", self._setcookie)
        app.router.add_route("*", "/{tail:.*}", self._echo)
        return app

    async def start(self) -> int:
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        seen = {
            "method": request.method,
            "path": request.raw_path,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body": len(body),
        }
        self.seen.append(seen)
        return web.json_response(seen)

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("echo.v1",))
        await ws.prepare(request)
        await ws.send_json({"headers": dict(request.headers), "protocol": ws.ws_protocol})
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                if msg.data == "close":
                    await ws.close(code=4001, message=b"asked to")
                else:
                    await ws.send_str("echo:" + msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data[::-1])
        return ws

    async def _upload(self, request: web.Request) -> web.Response:
        total = 0
        async for chunk in request.content.iter_any():
            total += len(chunk)
        self.uploaded.append(total)
        return web.json_response({"bytes": total, "chunked": "chunked" in request.headers.get(
            "Transfer-Encoding", "").lower(), "length": request.headers.get("Content-Length")})

    async def _download(self, request: web.Request) -> web.StreamResponse:
        size = int(request.query.get("bytes", "0"))
        response = web.StreamResponse()
        await response.prepare(request)
        block = b"x" * 65536
        left = size
        while left > 0:
            await response.write(block[: min(left, len(block))])
            left -= len(block)
        await response.write_eof()
        return response

    async def _setcookie(self, request: web.Request) -> web.Response:
        response = web.Response(text="cookies")
        response.set_cookie("app_cookie", "fine")
        response.set_cookie("__Host-gateway_session", "planted", path="/", secure=True)
        response.set_cookie("gateway_session", "planted")
        return response


@dataclass
class Wall:
    """A running wall and everything around it."""

    store: Store
    portal: Portal
    accounts: Accounts
    server: ProxyAuthServer
    upstream: EchoUpstream
    config: ProxyAuthConfig
    port: int
    users: dict[str, User]
    apps: dict[str, App]
    totp: dict[str, pyotp.TOTP] = field(default_factory=dict)
    audit: AuditLog | None = None

    @property
    def cookie_name(self) -> str:
        return self.server.sessions.config.cookie_name

    @property
    def flow_cookie_name(self) -> str:
        return self.server.sessions.config.flow_cookie_name

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def settled(self) -> None:
        """Wait until the wall's route table has applied every app change heard so far."""
        routes = self.server.routes
        if isinstance(routes, StoreRoutes):
            await routes.settled()

    async def login(
        self, client: aiohttp.ClientSession, app: str, username: str,
        password: str = PASSWORD, *, target: str = "/",
    ) -> str:
        """Sign in through the form (and the 2FA step when the user has one); answer the
        session cookie's value."""
        form_page = await client.get(
            self.url(f"/login?redirect={target}"), headers={"Host": host(app)},
            allow_redirects=False,
        )
        assert form_page.status == 200, await form_page.text()
        flow = form_page.cookies[self.flow_cookie_name].value
        csrf = csrf_of(await form_page.text())
        answer = await client.post(
            self.url("/login"),
            headers={"Host": host(app), "Cookie": f"{self.flow_cookie_name}={flow}"},
            data={"csrf": csrf, "step": "password", "redirect": target, "username": username,
                  "password": password},
            allow_redirects=False,
        )
        if answer.status == 200 and 'name="code"' in (text := await answer.text()):
            flow = answer.cookies[self.flow_cookie_name].value
            answer = await client.post(
                self.url("/login"),
                headers={"Host": host(app), "Cookie": f"{self.flow_cookie_name}={flow}"},
                data={"csrf": csrf_of(text), "step": "totp",
                      "code": self.totp[username].now()},
                allow_redirects=False,
            )
        assert answer.status == 303, (answer.status, await answer.text())
        return answer.cookies[self.cookie_name].value

    def session_header(self, token: str) -> dict[str, str]:
        return {"Cookie": f"{self.cookie_name}={token}"}


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def basic(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


def seen_headers(body: dict[str, Any]) -> dict[str, list[str]]:
    """The echo's header list as name (lower case) → values."""
    out: dict[str, list[str]] = {}
    for name, value in body["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


@contextlib.asynccontextmanager
async def running_wall(
    tmp_path: Path,
    *,
    store_url: str | None = None,
    policy: AttemptPolicy | None = None,
    change_feed: bool = False,
    domain: str = DOMAIN,
    **overrides: Any,
) -> AsyncIterator[Wall]:
    """Store, portal, users, apps, upstream and wall, all torn down on exit.

    ``change_feed``: also hear other processes' writes (for tests with a second node).
    """
    store = await open_store(
        store_url or f"sqlite:///{tmp_path / 'store.db'}", data_dir=tmp_path, poll_interval=0.02
    )
    if change_feed:
        await store.db.start_change_feed()
    upstream = EchoUpstream()
    await upstream.start()
    audit = AuditLog(store.audit)
    portal = await build_portal(
        FAST, store, audit=audit, metrics=Metrics(), policy=policy or NoLimits()
    )
    hasher = portal.verifier.hasher
    accounts = Accounts(store, hasher, audit)
    server: ProxyAuthServer | None = None
    try:
        users = {
            name: await accounts.create(
                username=name, email=f"{name}@{DOMAIN}", password=PASSWORD,
                display_name=f"{name.title()} Example",
            )
            for name in ("alice", "bob", "carol")
        }
        staff = await accounts.add_group("staff")
        await accounts.add_member(staff, users["alice"])
        await accounts.add_member(staff, users["bob"])
        wall_totp: dict[str, pyotp.TOTP] = {}
        enrolment = await accounts.enable_totp(users["bob"], issuer="tests")
        wall_totp["bob"] = pyotp.TOTP(enrolment.secret)
        apps: dict[str, App] = {}
        closed_port = _closed_port()
        for name, addon in APPS.items():
            manifest: dict[str, Any] = {"title": f"{name.title()} App", "addons": {}}
            if addon is not None:
                manifest["addons"]["proxyAuth"] = addon
            apps[name] = await store.apps.add(
                location=name, domain=domain, manifest=manifest,
                upstream=(f"http://127.0.0.1:{closed_port}" if name == "down" else upstream.url),
                access=AccessRestriction(groups=(staff.id,)) if name == "staff" else None,
            )
        users = {name: await store.users.get(u.id) for name, u in users.items()}
        settings: dict[str, Any] = {
            "enabled": True, "listen": ListenAddress("127.0.0.1", 0), "secure_cookies": True,
            **overrides,
        }
        config = dataclasses.replace(ProxyAuthConfig(), **settings)
        server = ProxyAuthServer(
            config, store=store, portal=portal, audit=audit, metrics=WallMetrics()
        )
        (address,) = await server.start()
        yield Wall(
            store=store, portal=portal, accounts=accounts, server=server, upstream=upstream,
            config=config, port=address[1], users=users, apps=apps, totp=wall_totp,
            audit=audit,
        )
    finally:
        if server is not None:
            await server.stop(grace=1.0)
        await upstream.stop()
        await audit.close()
        hasher.close()
        await store.close()


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def curl(*args: str, timeout: float = 30.0) -> tuple[int, str, str]:
    """Run curl without blocking the loop the wall runs on; answer (rc, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        "curl", "--silent", "--show-error", "--max-time", str(int(timeout)), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout + 5)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def plain_client() -> aiohttp.ClientSession:
    """A client that keeps no cookies of its own: tests send exactly the cookies they mean."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())


def new_password() -> str:
    return "changed-" + secrets.token_hex(8)


def as_json(text: str) -> Any:
    return json.loads(text)


@contextlib.asynccontextmanager
async def another_node(wall: Wall, tmp_path: Path, store_url: str) -> AsyncIterator[Wall]:
    """A second gateway node on the same store (and the same session storage): its own
    store connection, portal and wall, hearing the first node's changes as any node would."""
    store = await open_store(store_url, data_dir=tmp_path, poll_interval=0.02)
    await store.db.start_change_feed()
    audit = AuditLog(store.audit)
    portal = await build_portal(FAST, store, audit=audit, metrics=Metrics())
    server = ProxyAuthServer(
        wall.config, store=store, portal=portal, audit=audit, metrics=WallMetrics()
    )
    try:
        (address,) = await server.start()
        yield dataclasses.replace(
            wall, store=store, portal=portal, server=server, port=address[1], audit=audit
        )
    finally:
        await server.stop(grace=1.0)
        await audit.close()
        portal.verifier.hasher.close()
        await store.close()


async def eventually(check: Any, *, timeout: float = 10.0, every: float = 0.02) -> None:
    """Poll ``await check()`` until it is true; fail after ``timeout`` (a bounded loop)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {timeout}s: {check}")
        await asyncio.sleep(every)
