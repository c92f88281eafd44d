"""The forward-auth endpoint: asked directly the way Traefik and Caddy ask it, and behind real
nginx (Debian's) configured as docs/forward-auth.md documents.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.proxyauth_nginx import forward_auth_server, free_port, running_nginx
from tests.proxyauth_support import (
    PASSWORD,
    Wall,
    basic,
    csrf_of,
    host,
    plain_client,
    running_wall,
    seen_headers,
)

pytestmark = pytest.mark.asyncio

AUTH = "/_gateway/auth"


@pytest.fixture
async def wall(tmp_path: Path) -> AsyncIterator[Wall]:
    async with running_wall(tmp_path, trusted_proxies=["127.0.0.1/32"]) as running:
        yield running


async def ask(
    wall: Wall, client: aiohttp.ClientSession, app: str, uri: str, *, flavour: str = "",
    **headers: str,
) -> aiohttp.ClientResponse:
    """A check as Traefik's ForwardAuth sends it."""
    return await client.get(
        wall.url(AUTH + flavour),
        headers={
            "Host": "127.0.0.1", "X-Forwarded-Host": host(app), "X-Forwarded-Uri": uri,
            "X-Forwarded-Method": "GET", "X-Forwarded-Proto": "https",
            "X-Forwarded-For": "198.51.100.7", **headers,
        },
        allow_redirects=False,
    )


# -- the endpoint -----------------------------------------------------------------------


async def test_forward_auth_allows_with_identity_headers(wall: Wall) -> None:
    async with plain_client() as client:
        token = await wall.login(client, "whole", "alice")
        answer = await ask(wall, client, "whole", "/page", **wall.session_header(token))
        assert answer.status == 200
        assert answer.headers["X-Remote-User"] == "alice"
        assert answer.headers["X-Remote-Email"] == "alice@example.test"
        assert answer.headers["X-Remote-Groups"] == "staff"
        assert await answer.read() == b""


async def test_forward_auth_redirects_browsers_and_401s_api_clients(wall: Wall) -> None:
    async with plain_client() as client:
        browser = await ask(wall, client, "whole", "/page?x=1")
        assert browser.status == 302
        assert browser.headers["Location"] == "/login?redirect=/page%3Fx%3D1"
        api = await ask(wall, client, "whole", "/page", Accept="application/json")
        assert api.status == 401
        assert api.headers["WWW-Authenticate"].startswith("Cookie ")
        nginx = await ask(wall, client, "whole", "/page", flavour="/nginx")
        assert nginx.status == 401
        assert nginx.headers["X-Gateway-Login"] == "/login?redirect=/page"


async def test_forward_auth_applies_the_same_rules(wall: Wall) -> None:
    async with plain_client() as client:
        for app, uri, expected in [
            ("admin", "/public", 200), ("admin", "//admin", 302), ("admin", "/%61dmin", 302),
            ("hooks", "/webhooks2", 200), ("hooks", "/settings", 302),
            ("admin", "/login", 200),  # the wall's own page is never a redirect loop
            ("nosuch", "/", 404),
        ]:
            answer = await ask(wall, client, app, uri)
            assert answer.status == expected, (app, uri)
        bearer = await ask(wall, client, "bearer", "/api", Authorization="Bearer t")
        assert bearer.status == 200
        assert bearer.headers["X-Remote-User"] == ""
        ok = await ask(wall, client, "basic", "/", Authorization=basic("alice", PASSWORD))
        assert (ok.status, ok.headers["X-Remote-User"]) == (200, "alice")


async def test_forward_auth_answers_only_trusted_proxies(tmp_path: Path) -> None:
    async with running_wall(tmp_path) as wall, plain_client() as client:
        answer = await ask(wall, client, "whole", "/")
        assert answer.status == 403
        assert "trusted_proxies" in await answer.text()


async def test_forward_auth_uses_the_client_address_the_proxy_saw(tmp_path: Path) -> None:
    class Recording:
        def __init__(self) -> None:
            self.sources: list[str | None] = []

        async def check(self, attempt: Any) -> Any:
            from ratelimit import Allow

            self.sources.append(attempt.source)
            return Allow()

        async def record(self, attempt: Any, outcome: Any) -> None:
            return None

    policy = Recording()
    async with running_wall(
        tmp_path, trusted_proxies=["127.0.0.1/32"], policy=policy
    ) as wall, plain_client() as client:
        await ask(wall, client, "basic", "/", Authorization=basic("alice", PASSWORD))
    assert policy.sources == ["198.51.100.7"]


# -- behind real nginx -------------------------------------------------------------------


async def test_nginx_auth_request_in_front_of_the_endpoint(wall: Wall, tmp_path: Path) -> None:
    listen = free_port()
    servers = forward_auth_server(
        listen=listen, wall=wall.port, app=wall.upstream.port, auth_path=AUTH
    )
    async with running_nginx(tmp_path / "nginx", servers, [listen]), plain_client() as client:
        base = f"http://127.0.0.1:{listen}"

        def at(app: str) -> dict[str, str]:
            return {"Host": f"{host(app)}:{listen}"}

        # Unauthenticated browser: nginx turns the check's 401 into the login redirect.
        first = await client.get(base + "/docs?x=1", headers=at("whole"), allow_redirects=False)
        assert first.status == 302
        assert first.headers["Location"] == "/login?redirect=/docs%3Fx%3D1"
        # API client: a 401 with the check's challenge.
        api = await client.get(
            base + "/docs", headers={**at("whole"), "Accept": "application/json"},
            allow_redirects=False,
        )
        assert api.status == 401
        assert api.headers["WWW-Authenticate"].startswith("Cookie ")

        # The login form through nginx, origin checks included.
        form = await client.get(base + "/login?redirect=/docs", headers=at("whole"))
        assert form.status == 200
        flow = form.cookies[wall.flow_cookie_name].value
        posted = await client.post(
            base + "/login",
            data={"csrf": csrf_of(await form.text()), "redirect": "/docs",
                  "username": "alice", "password": PASSWORD},
            headers={**at("whole"), "Origin": f"http://{host('whole')}:{listen}",
                     "Cookie": f"{wall.flow_cookie_name}={flow}"},
            allow_redirects=False,
        )
        assert posted.status == 303
        assert posted.headers["Location"] == "/docs"
        token = posted.cookies[wall.cookie_name].value

        landed = await client.get(
            base + "/docs",
            headers={**at("whole"), **wall.session_header(token), "X-Remote-User": "mallory",
                     "Remote-User": "mallory", "X-Forwarded-User": "mallory"},
        )
        assert landed.status == 200
        seen = seen_headers(await landed.json())
        assert seen["x-remote-user"] == ["alice"]
        assert seen["x-remote-groups"] == ["staff"]
        assert "remote-user" not in seen
        assert "x-forwarded-user" not in seen

        # Path rules, Basic and Bearer through nginx.
        assert (await client.get(base + "/public", headers=at("admin"))).status == 200
        walled = await client.get(base + "//admin", headers=at("admin"), allow_redirects=False)
        assert walled.status == 302
        dav = await client.get(
            base + "/", headers={**at("basic"), "Authorization": basic("alice", PASSWORD)}
        )
        assert dav.status == 200
        assert seen_headers(await dav.json())["x-remote-user"] == ["alice"]
        wrong = await client.get(
            base + "/", headers={**at("basic"), "Authorization": basic("alice", "nope")}
        )
        assert wrong.status == 401
        assert wrong.headers["WWW-Authenticate"].startswith("Basic ")
        api_token = await client.get(
            base + "/api", headers={**at("bearer"), "Authorization": "Bearer t0k3n"}
        )
        assert api_token.status == 200
        assert seen_headers(await api_token.json())["authorization"] == ["Bearer t0k3n"]

        # Loss of access: nginx passes the check's 403 on.
        staff_token = await wall.login(client, "staff", "alice")
        staff = await wall.store.groups.resolve("staff")
        await wall.accounts.remove_member(staff, wall.users["alice"])
        denied = await client.get(
            base + "/", headers={**at("staff"), **wall.session_header(staff_token)},
            allow_redirects=False,
        )
        assert denied.status == 403

        # Logout through nginx ends the session for the next check.
        out = await client.get(
            base + "/logout",
            headers={**at("whole"), **wall.session_header(token), "Sec-Fetch-Site": "same-origin"},
        )
        assert out.status == 200
        after = await client.get(
            base + "/docs", headers={**at("whole"), **wall.session_header(token)},
            allow_redirects=False,
        )
        assert after.status == 302
