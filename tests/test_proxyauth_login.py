"""The login form, the 2FA step, logout and sessions, over real sockets with aiohttp's client.

Cookies are sent by hand (the client keeps none), so each test states exactly what the
browser would hold.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import re
import time
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path

import aiohttp
import pytest

from gateway.config import Config, ListenAddress
from gateway.config.proxyauth import ProxyAuthConfig
from gateway.runtime.runtime import Runtime
from gateway.store.sessions import session_key
from proxyauth.login import EXPIRED, FAILED
from ratelimit import Allow, Attempt, Decision, Delay, Outcome
from tests.proxyauth_support import (
    PASSWORD,
    WRONG,
    Wall,
    basic,
    csrf_of,
    host,
    new_password,
    plain_client,
    running_wall,
)

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def wall(tmp_path: Path) -> AsyncIterator[Wall]:
    async with running_wall(tmp_path) as running:
        yield running


async def open_form(
    wall: Wall, client: aiohttp.ClientSession, app: str = "whole", target: str = "/"
) -> tuple[str, str]:
    """GET /login; answer (login cookie, csrf token)."""
    page = await client.get(
        wall.url("/login"), params={"redirect": target}, headers={"Host": host(app)}
    )
    assert page.status == 200
    return page.cookies[wall.flow_cookie_name].value, csrf_of(await page.text())


async def post_form(
    wall: Wall, client: aiohttp.ClientSession, flow: str, fields: dict[str, str],
    app: str = "whole", **headers: str,
) -> aiohttp.ClientResponse:
    cookie = f"{wall.flow_cookie_name}={flow}"
    if "Cookie" in headers:
        cookie += "; " + headers.pop("Cookie")
    return await client.post(
        wall.url("/login"), data=fields, allow_redirects=False,
        headers={"Host": host(app), "Cookie": cookie, **headers},
    )


def set_cookie(response: aiohttp.ClientResponse, name: str) -> str:
    for header in response.headers.getall("Set-Cookie", []):
        if header.startswith(name + "="):
            return header
    raise AssertionError(f"no Set-Cookie for {name}: {response.headers.getall('Set-Cookie', [])}")


# -- the form ---------------------------------------------------------------------------


async def test_the_form_signs_in_and_lands_on_the_requested_path(wall: Wall) -> None:
    async with plain_client() as client:
        flow, csrf = await open_form(wall, client, target="/docs/page?x=1")
        answer = await post_form(wall, client, flow, {
            "csrf": csrf, "step": "password", "redirect": "/docs/page?x=1",
            "username": "alice", "password": PASSWORD,
        })
        assert answer.status == 303
        assert answer.headers["Location"] == "/docs/page?x=1"
        cookie = set_cookie(answer, wall.cookie_name)
        token = SimpleCookie(cookie)[wall.cookie_name].value
        landed = await client.get(
            wall.url("/docs/page?x=1"),
            headers={"Host": host("whole"), **wall.session_header(token)},
        )
        assert landed.status == 200
        assert (await landed.json())["path"] == "/docs/page?x=1"


async def test_the_session_cookie_is_host_only_secure_httponly_lax(wall: Wall) -> None:
    async with plain_client() as client:
        flow, csrf = await open_form(wall, client)
        answer = await post_form(wall, client, flow, {
            "csrf": csrf, "username": "alice@example.test", "password": PASSWORD,
        })
        header = set_cookie(answer, "__Host-gateway_session")
    attributes = [part.strip().lower() for part in header.split(";")]
    assert "httponly" in attributes
    assert "secure" in attributes
    assert "samesite=lax" in attributes
    assert "path=/" in attributes
    assert not any(a.startswith("domain") for a in attributes)
    token = header.split(";")[0].split("=", 1)[1]
    assert len(token) >= 43  # 32 random bytes
    # The store keeps only a hash of it.
    assert await wall.store.sessions.get(token) is not None
    row = await wall.store.db.fetchrow("SELECT id FROM web_sessions")
    assert row is not None
    assert row["id"] == session_key(token)
    assert row["id"] != token


async def test_every_failure_says_the_same(wall: Wall) -> None:
    async with plain_client() as client:
        texts = []
        for username, password in [("alice", WRONG), ("nobody", PASSWORD), ("carol", PASSWORD)]:
            flow, csrf = await open_form(wall, client, app="staff")
            answer = await post_form(wall, client, flow, {
                "csrf": csrf, "username": username, "password": password,
            }, app="staff")
            assert answer.status == 401
            assert not any(
                c.startswith(wall.cookie_name + "=")
                for c in answer.headers.getall("Set-Cookie", [])
            )
            text = await answer.text()
            assert FAILED in text
            texts.append(re.sub(r'name="csrf" value="[^"]+"', "", text).replace(username, "USER"))
        # Wrong password, unknown user, and a right password without access to the app.
        assert texts[0] == texts[1] == texts[2]


async def test_app_passwords_never_work_on_the_form(wall: Wall) -> None:
    issued = await wall.accounts.add_app_password(
        wall.users["alice"], name="x", identifier=wall.apps["whole"].id
    )
    async with plain_client() as client:
        flow, csrf = await open_form(wall, client)
        answer = await post_form(wall, client, flow, {
            "csrf": csrf, "username": "alice", "password": issued.password,
        })
        assert answer.status == 401


async def test_every_attempt_is_audited_with_the_door_and_app(wall: Wall) -> None:
    async with plain_client() as client:
        flow, csrf = await open_form(wall, client)
        await post_form(wall, client, flow, {"csrf": csrf, "username": "alice", "password": WRONG})
        await wall.login(client, "whole", "alice")
    assert wall.audit is not None
    await wall.audit.flush()
    logins = [e for e in await wall.store.audit.recent(door="proxyauth")
              if e.action.startswith("user.login")]
    assert [e.action for e in logins] == ["user.login.failed", "user.login"]
    for event in logins:
        assert event.app_id == wall.apps["whole"].id
        assert event.source == "127.0.0.1"
        assert PASSWORD not in repr(event)
        assert WRONG not in repr(event)


# -- CSRF -------------------------------------------------------------------------------


async def test_posts_without_the_forms_token_are_refused(wall: Wall) -> None:
    async with plain_client() as client:
        flow, csrf = await open_form(wall, client)
        other_flow, other_csrf = await open_form(wall, client)
        fields = {"username": "alice", "password": PASSWORD}
        for attempt in (
            await post_form(wall, client, flow, fields),  # no token
            await post_form(wall, client, flow, {**fields, "csrf": "0" * 32}),
            # The token of another login cookie.
            await post_form(wall, client, flow, {**fields, "csrf": other_csrf}),
            await client.post(  # no login cookie at all
                wall.url("/login"), data={**fields, "csrf": csrf},
                headers={"Host": host("whole")}, allow_redirects=False,
            ),
        ):
            assert attempt.status == 400
            assert EXPIRED in await attempt.text()
        assert other_flow != flow


async def test_posts_from_another_origin_are_refused(wall: Wall) -> None:
    async with plain_client() as client:
        flow, csrf = await open_form(wall, client)
        fields = {"csrf": csrf, "username": "alice", "password": PASSWORD}
        for headers in (
            {"Origin": "https://evil.test"},
            {"Origin": "null"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Referer": "https://evil.test/page"},
        ):
            answer = await post_form(wall, client, flow, fields, **headers)
            assert answer.status == 400, headers
        same = await post_form(
            wall, client, flow, fields, Origin=f"http://{host('whole')}",
            **{"Sec-Fetch-Site": "same-origin"},
        )
        assert same.status == 303


# -- redirects --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    ["//evil.test", "https://evil.test/x", "/\\evil.test", "/\t/evil.test", "javascript:alert(1)",
     "http:/evil.test", "/login", "////evil.test"],
)
async def test_only_same_origin_paths_are_returned_to(wall: Wall, target: str) -> None:
    async with plain_client() as client:
        flow, csrf = await open_form(wall, client, target=target)
        answer = await post_form(wall, client, flow, {
            "csrf": csrf, "redirect": target, "username": "alice", "password": PASSWORD,
        })
        assert answer.status == 303
        assert answer.headers["Location"] == "/"
        # Already signed in: GET /login goes straight on, to the same safe place.
        token = SimpleCookie(set_cookie(answer, wall.cookie_name))[wall.cookie_name].value
        again = await client.get(
            wall.url("/login"), params={"redirect": target},
            headers={"Host": host("whole"), **wall.session_header(token)}, allow_redirects=False,
        )
        assert again.status == 303
        assert again.headers["Location"] == "/"


# -- 2FA --------------------------------------------------------------------------------


async def test_2fa_users_get_the_code_step_and_then_land(wall: Wall) -> None:
    async with plain_client() as client:
        flow, csrf = await open_form(wall, client, target="/after")
        step = await post_form(wall, client, flow, {
            "csrf": csrf, "redirect": "/after", "username": "bob", "password": PASSWORD,
        })
        assert step.status == 200
        page = await step.text()
        assert 'autocomplete="one-time-code"' in page
        assert PASSWORD not in page  # the password is not carried in the page
        assert wall.cookie_name + "=" not in " ".join(step.headers.getall("Set-Cookie"))
        step_flow = step.cookies[wall.flow_cookie_name].value
        assert step_flow != flow
        assert PASSWORD not in step_flow
        wrong = await post_form(wall, client, step_flow, {
            "csrf": csrf_of(page), "step": "totp", "code": "000000",
        })
        assert wrong.status == 401
        assert FAILED in await wrong.text()
        code = wall.totp["bob"].now()
        right = await post_form(wall, client, step_flow, {
            "csrf": csrf_of(page), "step": "totp", "code": code,
        })
        assert right.status == 303
        assert right.headers["Location"] == "/after"
        token = SimpleCookie(set_cookie(right, wall.cookie_name))[wall.cookie_name].value
        session = await wall.server.sessions.find(token)
        assert session is not None
        assert session.method == "password+totp"
        # The same code cannot be used again (RFC 6238 5.2), nor the finished step.
        replay = await post_form(wall, client, step_flow, {
            "csrf": csrf_of(page), "step": "totp", "code": code,
        })
        assert replay.status == 400


async def test_the_code_step_gives_up_after_five_wrong_codes(tmp_path: Path) -> None:
    async with running_wall(tmp_path, login_burst=20) as wall, plain_client() as client:
        flow, csrf = await open_form(wall, client)
        step = await post_form(wall, client, flow, {
            "csrf": csrf, "username": "bob", "password": PASSWORD,
        })
        step_flow = step.cookies[wall.flow_cookie_name].value
        step_csrf = csrf_of(await step.text())
        statuses = []
        for _ in range(5):
            answer = await post_form(wall, client, step_flow, {
                "csrf": step_csrf, "step": "totp", "code": "111111",
            })
            statuses.append((answer.status, 'name="code"' in await answer.text()))
        assert statuses[:4] == [(401, True)] * 4
        assert statuses[4] == (401, False)  # back to the password
        right = await post_form(wall, client, step_flow, {
            "csrf": step_csrf, "step": "totp", "code": wall.totp["bob"].now(),
        })
        assert right.status == 400


# -- sessions ---------------------------------------------------------------------------


async def test_login_replaces_any_session_the_browser_brought(wall: Wall) -> None:
    async with plain_client() as client:
        first = await wall.login(client, "whole", "alice")
        flow, csrf = await open_form(wall, client)
        answer = await post_form(
            wall, client, flow, {"csrf": csrf, "username": "alice", "password": PASSWORD},
            Cookie=f"{wall.cookie_name}={first}",
        )
        second = SimpleCookie(set_cookie(answer, wall.cookie_name))[wall.cookie_name].value
        assert second != first
        assert await wall.server.sessions.find(first) is None
        assert await wall.server.sessions.find(second) is not None


async def test_sessions_end_on_password_change_deactivation_and_uninstall(wall: Wall) -> None:
    async def status(token: str, app: str = "whole") -> int:
        answer = await client.get(
            wall.url("/"), headers={"Host": host(app), **wall.session_header(token)},
            allow_redirects=False,
        )
        return answer.status

    async with plain_client() as client:
        alice = await wall.login(client, "whole", "alice")
        bob = await wall.login(client, "whole", "bob")
        carol = await wall.login(client, "admin", "carol", target="/admin")
        carol_admin = lambda: status(carol, "admin")  # noqa: E731
        assert (await status(alice), await status(bob)) == (200, 200)

        await wall.accounts.set_password(wall.users["alice"], new_password())
        assert await status(alice) == 302
        await wall.accounts.disable(wall.users["bob"])
        assert await status(bob) == 302
        assert await carol_admin() == 200

        await wall.store.apps.remove(wall.apps["admin"].id)
        await wall.settled()
        assert await carol_admin() == 404
        assert await wall.store.sessions.get(carol) is None


async def test_deactivation_holds_even_without_the_accounts_module(wall: Wall) -> None:
    """The access check refuses inactive users on every request, whoever flipped the flag."""
    async with plain_client() as client:
        token = await wall.login(client, "whole", "alice")
        await wall.store.users.update(wall.users["alice"].id, active=False)
        answer = await client.get(
            wall.url("/"), headers={"Host": host("whole"), **wall.session_header(token)},
            allow_redirects=False,
        )
        assert answer.status == 302
        assert await wall.store.sessions.get(token) is None


async def test_idle_and_absolute_lifetimes(tmp_path: Path) -> None:
    # Near the real time: the store stamps a new row with its own clock.
    now = [time.time()]
    async with running_wall(tmp_path, session_idle=600.0, session_lifetime=3600.0) as wall:
        sessions = wall.server.sessions
        sessions._clock = lambda: now[0]  # type: ignore[attr-defined]
        token = await sessions.create(user_id=wall.users["alice"].id,
                                      app_id=wall.apps["whole"].id, method="password")
        now[0] += 599
        assert await sessions.find(token) is not None
        now[0] += 599  # used 599 s ago: still inside the idle limit
        assert await sessions.find(token) is not None
        now[0] += 601
        assert await sessions.find(token) is None
        token = await sessions.create(user_id=wall.users["alice"].id,
                                      app_id=wall.apps["whole"].id, method="password")
        for _ in range(7):
            now[0] += 500
            assert await sessions.find(token) is not None
        now[0] += 500  # 4000 s after login: past the absolute lifetime
        assert await sessions.find(token) is None


# -- logout ----------------------------------------------------------------------------


async def test_logout_ends_the_session_and_clears_the_cookie(wall: Wall) -> None:
    async with plain_client() as client:
        token = await wall.login(client, "whole", "alice")
        out = await client.get(
            wall.url("/logout"),
            headers={"Host": host("whole"), "Sec-Fetch-Site": "same-origin",
                     **wall.session_header(token)},
        )
        assert out.status == 200
        assert "You are signed out" in await out.text()
        cleared = set_cookie(out, wall.cookie_name)
        assert "max-age=0" in cleared.lower()
        after = await client.get(
            wall.url("/"), headers={"Host": host("whole"), **wall.session_header(token)},
            allow_redirects=False,
        )
        assert after.status == 302


async def test_logout_from_another_site_asks_first(wall: Wall) -> None:
    async with plain_client() as client:
        token = await wall.login(client, "whole", "alice")
        asked = await client.get(
            wall.url("/logout"),
            headers={"Host": host("whole"), "Sec-Fetch-Site": "cross-site",
                     **wall.session_header(token)},
        )
        assert asked.status == 200
        page = await asked.text()
        assert 'action="/logout"' in page
        assert await wall.server.sessions.find(token) is not None
        flow = asked.cookies[wall.flow_cookie_name].value
        done = await client.post(
            wall.url("/logout"), data={"csrf": csrf_of(page)},
            headers={"Host": host("whole"),
                     "Cookie": f"{wall.cookie_name}={token}; {wall.flow_cookie_name}={flow}"},
        )
        assert done.status == 200
        assert await wall.server.sessions.find(token) is None


# -- rate limits and outages --------------------------------------------------------------


async def test_the_form_has_its_own_post_rate(tmp_path: Path) -> None:
    async with running_wall(tmp_path, login_rate=0.5, login_burst=2) as wall:
        async with plain_client() as client:
            flow, csrf = await open_form(wall, client)
            fields = {"csrf": csrf, "username": "alice", "password": WRONG}
            first = await post_form(wall, client, flow, fields)
            second = await post_form(wall, client, flow, fields)
            third = await post_form(wall, client, flow, fields)
        assert (first.status, second.status) == (401, 401)
        assert third.status == 429
        assert 1 <= int(third.headers["Retry-After"]) <= 2
        assert "Too many attempts" in await third.text()


class Refusing:
    """A lockout policy that says "later" to everyone (the real one lives in ratelimit/)."""

    def __init__(self) -> None:
        self.checked: list[Attempt] = []

    async def check(self, attempt: Attempt) -> Decision:
        self.checked.append(attempt)
        return Delay(retry_after=42.5, scope="source")

    async def record(self, attempt: Attempt, outcome: Outcome) -> None:
        return None


class Broken:
    async def check(self, attempt: Attempt) -> Decision:
        raise OSError("policy storage is down")

    async def record(self, attempt: Attempt, outcome: Outcome) -> None:
        return None


async def test_lockout_answers_429_with_retry_after_on_every_path(tmp_path: Path) -> None:
    policy = Refusing()
    async with running_wall(tmp_path, policy=policy) as wall, plain_client() as client:
        flow, csrf = await open_form(wall, client)
        form = await post_form(
            wall, client, flow, {"csrf": csrf, "username": "alice", "password": PASSWORD}
        )
        assert form.status == 429
        assert form.headers["Retry-After"] == "43"
        over_basic = await client.get(
            wall.url("/"),
            headers={"Host": host("basic"), "Authorization": basic("alice", PASSWORD)},
        )
        assert over_basic.status == 429
        assert over_basic.headers["Retry-After"] == "43"
    assert {a.door for a in policy.checked} == {"proxyauth"}
    assert all(a.source == "127.0.0.1" for a in policy.checked)


async def test_a_check_that_cannot_be_made_is_a_503(tmp_path: Path) -> None:
    async with running_wall(tmp_path, policy=Broken()) as wall, plain_client() as client:
        flow, csrf = await open_form(wall, client)
        form = await post_form(
            wall, client, flow, {"csrf": csrf, "username": "alice", "password": PASSWORD}
        )
        assert form.status == 503
        assert "Sign-in is unavailable" in await form.text()


async def test_a_policy_that_allows_is_asked_for_every_login(tmp_path: Path) -> None:
    class Counting:
        def __init__(self) -> None:
            self.outcomes: list[Outcome] = []

        async def check(self, attempt: Attempt) -> Decision:
            return Allow()

        async def record(self, attempt: Attempt, outcome: Outcome) -> None:
            self.outcomes.append(outcome)

    policy = Counting()
    async with running_wall(tmp_path, policy=policy) as wall, plain_client() as client:
        flow, csrf = await open_form(wall, client)
        await post_form(wall, client, flow, {"csrf": csrf, "username": "alice", "password": WRONG})
        await wall.login(client, "whole", "alice")
        await asyncio.sleep(0)
    assert policy.outcomes == [Outcome.FAILURE, Outcome.SUCCESS]


# -- plain-HTTP development ---------------------------------------------------------------


async def test_development_mode_says_so(tmp_path: Path) -> None:
    async with running_wall(tmp_path, secure_cookies=False) as wall, plain_client() as client:
        assert wall.cookie_name == "gateway_session"
        page = await client.get(wall.url("/login"), headers={"Host": host("whole")})
        assert "Development mode" in await page.text()
        token = await wall.login(client, "whole", "alice")
        flow, csrf = await open_form(wall, client)
        answer = await post_form(
            wall, client, flow, {"csrf": csrf, "username": "alice", "password": PASSWORD}
        )
        attributes = set_cookie(answer, "gateway_session").lower()
        assert "secure" not in attributes
        assert "httponly" in attributes
        assert token


async def test_production_pages_do_not_mention_development(wall: Wall) -> None:
    async with plain_client() as client:
        page = await client.get(wall.url("/login"), headers={"Host": host("whole")})
        html = await page.text()
    assert "Development mode" not in html
    assert "script" not in html.lower()
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["Cache-Control"] == "no-store"


async def test_the_runtime_serves_the_wall(tmp_path: Path) -> None:
    """``gateway serve``'s runtime imports proxyauth.server:build for [proxyauth]."""
    config = dataclasses.replace(
        Config(),
        runtime=dataclasses.replace(Config().runtime, data_dir=tmp_path / "data"),
        admin=dataclasses.replace(Config().admin, enabled=False),
        demo=dataclasses.replace(Config().demo, enabled=False),
        proxyauth=dataclasses.replace(
            ProxyAuthConfig(), enabled=True, listen=ListenAddress("127.0.0.1", 0)
        ),
    )
    runtime = Runtime(config, out=io.StringIO())
    await runtime.open()
    try:
        bound = await runtime.start()
        ((address, port),) = bound["proxyauth"]
        async with plain_client() as client:
            answer = await client.get(f"http://{address}:{port}/", headers={"Host": "nope.test"})
            assert answer.status == 404
            assert "No app here" in await answer.text()
    finally:
        await runtime.close()
