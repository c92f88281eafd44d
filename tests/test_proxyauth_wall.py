"""The login wall over real sockets: path rules, redirects and 401s, header hygiene, Basic and
Bearer, access re-checked per request. Clients: curl (``--path-as-is``, so the path on the
wire is the one written here) and aiohttp's client; behind the wall, a real aiohttp app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.proxyauth_support import (
    PASSWORD,
    WRONG,
    Wall,
    basic,
    curl,
    host,
    plain_client,
    running_wall,
    seen_headers,
)

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def wall(tmp_path: Path) -> AsyncIterator[Wall]:
    async with running_wall(tmp_path) as running:
        yield running


async def status_and_location(wall: Wall, app: str, path: str, *headers: str) -> tuple[int, str]:
    """What the wall answers to ``path`` exactly as written on the wire."""
    extra = [arg for h in headers for arg in ("-H", h)]
    rc, out, err = await curl(
        "--path-as-is", "-o", "/dev/null", "-w", "%{http_code} %header{location}",
        "-H", f"Host: {host(app)}", *extra, wall.url(path),
    )
    assert rc == 0, err
    code, _, location = out.partition(" ")
    return int(code), location


# -- path rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "walled"),
    [
        ("/admin", True),
        ("/admin/settings?tab=1", True),
        ("/administrator", True),  # a string prefix, as nginx's location is
        ("/%61dmin", True),  # percent-decoded before matching
        ("//admin", True),  # duplicate slashes merged
        ("/./admin", True),  # dot segments resolved
        ("/public/../admin", True),
        ("/%2e%2e/admin", True),
        ("/", False),
        ("/public", False),
        ("/adm", False),
    ],
)
async def test_prefix_rule_walls_the_normalised_path(wall: Wall, path: str, walled: bool) -> None:
    code, location = await status_and_location(wall, "admin", path)
    if walled:
        assert code == 302
        assert location.startswith("/login?redirect=/admin")
    else:
        assert code == 200


@pytest.mark.parametrize(
    ("path", "walled"),
    [
        ("/webhooks", False),
        ("/webhooks/github", False),
        ("/webhooks2", False),  # "!/webhooks" leaves every path starting so open
        ("/%77ebhooks/x", False),
        ("/", True),
        ("/settings", True),
        ("/webhooks/../settings", True),
        ("//webhooks/../../settings", True),
    ],
)
async def test_exclusion_rule(wall: Wall, path: str, walled: bool) -> None:
    code, _ = await status_and_location(wall, "hooks", path)
    assert code == (302 if walled else 200)


async def test_the_app_receives_the_path_the_wall_judged(wall: Wall) -> None:
    """/public/../admin must not reach the app as anything but /admin (or walled)."""
    async with plain_client() as client:
        token = await wall.login(client, "admin", "alice")
        for raw, expected in [("//admin/x", "/admin/x"), ("/%61dmin?q=%2F", "/admin?q=%2F"),
                              ("/public/./a//b/", "/public/a/b/"), ("/a%2Fb", "/a/b"),
                              ("/caf%C3%A9", "/caf%C3%A9")]:
            rc, out, err = await curl(
                "--path-as-is", "-H", f"Host: {host('admin')}",
                "-H", f"Cookie: {wall.cookie_name}={token}", wall.url(raw),
            )
            assert rc == 0, err
            assert wall.upstream.seen[-1]["path"] == expected, (raw, out)


async def test_whole_site_and_unknown_hosts(wall: Wall) -> None:
    assert (await status_and_location(wall, "whole", "/"))[0] == 302
    assert (await status_and_location(wall, "whole", "/anything.css"))[0] == 302
    code, _ = await status_and_location(wall, "nosuchapp", "/")
    assert code == 404


async def test_malformed_paths_are_refused(wall: Wall) -> None:
    assert (await status_and_location(wall, "admin", "/%00admin"))[0] == 400
    assert (await status_and_location(wall, "admin", "/x/%0d%0aSet-Cookie:a=b"))[0] == 400


async def test_login_and_logout_belong_to_the_wall_only_with_the_addon(wall: Wall) -> None:
    async with plain_client() as client:
        page = await client.get(wall.url("/login"), headers={"Host": host("admin")})
        assert page.status == 200
        assert "Username or email" in await page.text()
        assert not wall.upstream.seen
        mine = await client.get(wall.url("/login"), headers={"Host": host("plain")})
        assert mine.status == 200
        assert (await mine.json())["path"] == "/login"
        out = await client.get(wall.url("/logout"), headers={"Host": host("plain")})
        assert (await out.json())["path"] == "/logout"


# -- browsers are redirected, API clients get 401 ----------------------------------------


async def test_browsers_are_sent_to_login_with_the_original_target(wall: Wall) -> None:
    code, location = await status_and_location(wall, "whole", "/docs/page?x=1&y=2")
    assert code == 302
    assert location == "/login?redirect=" + quote("/docs/page?x=1&y=2", safe="/")


@pytest.mark.parametrize(
    "header",
    [
        "Accept: application/json",
        "Authorization: Bearer abc",
        "Authorization: Basic Zm9vOmJhcg==",
        "X-Requested-With: XMLHttpRequest",
        "Sec-Fetch-Mode: cors",
    ],
)
async def test_api_clients_get_401_not_a_redirect(wall: Wall, header: str) -> None:
    async with plain_client() as client:
        name, _, value = header.partition(": ")
        answer = await client.get(
            wall.url("/data"), headers={"Host": host("whole"), name: value},
            allow_redirects=False,
        )
        assert answer.status == 401
        assert answer.headers["WWW-Authenticate"].startswith("Cookie ")
        body = await answer.json()
        assert body["login"] == "/login?redirect=/data"


async def test_browser_navigation_still_redirects(wall: Wall) -> None:
    code, _ = await status_and_location(
        wall, "whole", "/", "Accept: text/html,application/json;q=0.9", "Sec-Fetch-Mode: navigate"
    )
    assert code == 302


# -- identity headers and header hygiene ----------------------------------------------


async def test_upstream_gets_identity_and_never_the_clients_copies(wall: Wall) -> None:
    async with plain_client() as client:
        token = await wall.login(client, "whole", "alice")
        answer = await client.get(
            wall.url("/profile"),
            headers={
                "Host": host("whole"),
                "Cookie": f"theme=dark; {wall.cookie_name}={token}; lang=en",
                "X-Remote-User": "mallory",
                "X_Remote_User": "mallory",
                "x-remote-email": "mallory@evil.test",
                "X-Remote-Groups": "admins",
                "Remote-User": "mallory",
                "X-Forwarded-User": "mallory",
                "X-Forwarded-For": "203.0.113.9",
                "X-Forwarded-Host": "evil.test",
                "X-Forwarded-Proto": "https",
            },
        )
        assert answer.status == 200
        seen = seen_headers(await answer.json())
    assert seen["x-remote-user"] == ["alice"]
    assert seen["x-remote-email"] == ["alice@example.test"]
    assert seen["x-remote-name"] == ["Alice Example"]
    assert seen["x-remote-groups"] == ["staff"]
    for spoofable in ("x_remote_user", "remote-user", "x-forwarded-user"):
        assert spoofable not in seen
    # Nobody is a trusted proxy here: the wall's own view replaces the client's claims.
    assert seen["x-forwarded-for"] == ["127.0.0.1"]
    assert seen["x-forwarded-host"] == [host("whole")]
    assert seen["x-forwarded-proto"] == ["http"]
    assert seen["x-forwarded-port"] == ["80"]
    assert seen["host"] == [host("whole")]
    # The session cookie stays with the wall; the app's own cookies pass.
    assert seen["cookie"] == ["theme=dark; lang=en"]


async def test_open_paths_strip_spoofed_identity_too(wall: Wall) -> None:
    async with plain_client() as client:
        answer = await client.get(
            wall.url("/webhooks/in"),
            headers={"Host": host("hooks"), "X-Remote-User": "admin", "X-Remote-Groups": "admins"},
        )
        seen = seen_headers(await answer.json())
    assert "x-remote-user" not in seen
    assert "x-remote-groups" not in seen


async def test_open_paths_carry_the_identity_of_a_signed_in_user(wall: Wall) -> None:
    async with plain_client() as client:
        token = await wall.login(client, "hooks", "alice")
        answer = await client.get(
            wall.url("/webhooks/in"), headers={"Host": host("hooks"), **wall.session_header(token)}
        )
        assert seen_headers(await answer.json())["x-remote-user"] == ["alice"]


async def test_hop_by_hop_headers_do_not_cross(wall: Wall) -> None:
    async with plain_client() as client:
        token = await wall.login(client, "whole", "alice")
        answer = await client.get(
            wall.url("/"),
            headers={
                "Host": host("whole"), **wall.session_header(token),
                "Connection": "keep-alive, X-Hop-Secret", "X-Hop-Secret": "1",
                "Keep-Alive": "timeout=5", "TE": "trailers", "Proxy-Authorization": "Basic eA==",
                "X-End-To-End": "kept",
            },
        )
        seen = seen_headers(await answer.json())
    for hop in ("x-hop-secret", "keep-alive", "te", "proxy-authorization"):
        assert hop not in seen
    assert seen["x-end-to-end"] == ["kept"]


async def test_an_app_cannot_plant_the_walls_cookies(wall: Wall) -> None:
    async with plain_client() as client:
        token = await wall.login(client, "whole", "alice")
        answer = await client.get(
            wall.url("/_setcookie"), headers={"Host": host("whole"), **wall.session_header(token)}
        )
        set_cookies = answer.headers.getall("Set-Cookie")
    assert any(c.startswith("app_cookie=fine") for c in set_cookies)
    ours = ("__Host-gateway_session=", "gateway_session=")
    assert not any(c.startswith(ours) for c in set_cookies)


# -- Basic ------------------------------------------------------------------------------


async def test_basic_with_the_password_passes_without_a_cookie(wall: Wall) -> None:
    async with plain_client() as client:
        answer = await client.get(
            wall.url("/dav/file"),
            headers={"Host": host("basic"), "Authorization": basic("alice", PASSWORD)},
        )
        assert answer.status == 200
        assert "Set-Cookie" not in answer.headers
        seen = seen_headers(await answer.json())
    assert seen["x-remote-user"] == ["alice"]
    # The wall consumed the credentials: the app never sees the password.
    assert "authorization" not in seen


async def test_basic_accepts_email_and_skips_2fa_as_documented(wall: Wall) -> None:
    async with plain_client() as client:
        by_email = await client.get(
            wall.url("/"),
            headers={"Host": host("basic"), "Authorization": basic("alice@example.test", PASSWORD)},
        )
        assert by_email.status == 200
        # bob has 2FA: Basic cannot ask for it (basicAuth's documented trade-off).
        with_2fa = await client.get(
            wall.url("/"), headers={"Host": host("basic"), "Authorization": basic("bob", PASSWORD)}
        )
        assert with_2fa.status == 200


async def test_basic_failures_are_401_with_a_basic_challenge(wall: Wall) -> None:
    async with plain_client() as client:
        for authorization in (basic("alice", WRONG), basic("nobody", PASSWORD), "Basic !!!"):
            answer = await client.get(
                wall.url("/"), headers={"Host": host("basic"), "Authorization": authorization}
            )
            assert answer.status == 401
            assert answer.headers["WWW-Authenticate"] == (
                'Basic realm="basic.example.test", charset="UTF-8"'
            )
        # A browser without credentials on a basicAuth app still gets the form.
        browser = await client.get(
            wall.url("/"), headers={"Host": host("basic")}, allow_redirects=False
        )
        assert browser.status == 302


async def test_app_passwords_work_over_basic_for_their_app_only(wall: Wall) -> None:
    alice = wall.users["alice"]
    for_basic = await wall.accounts.add_app_password(
        alice, name="dav client", identifier=wall.apps["basic"].id
    )
    for_other = await wall.accounts.add_app_password(
        alice, name="other", identifier=wall.apps["whole"].id
    )
    async with plain_client() as client:
        ok = await client.get(
            wall.url("/"),
            headers={"Host": host("basic"), "Authorization": basic("alice", for_basic.password)},
        )
        assert ok.status == 200
        assert seen_headers(await ok.json())["x-remote-user"] == ["alice"]
        wrong_app = await client.get(
            wall.url("/"),
            headers={"Host": host("basic"), "Authorization": basic("alice", for_other.password)},
        )
        assert wrong_app.status == 401


async def test_basic_is_ignored_where_basic_auth_is_off(wall: Wall) -> None:
    async with plain_client() as client:
        answer = await client.get(
            wall.url("/"),
            headers={"Host": host("whole"), "Authorization": basic("alice", PASSWORD)},
        )
        assert answer.status == 401
        assert answer.headers["WWW-Authenticate"].startswith("Cookie ")


# -- Bearer ---------------------------------------------------------------------------


async def test_bearer_passes_through_untouched_when_the_app_supports_it(wall: Wall) -> None:
    async with plain_client() as client:
        answer = await client.get(
            wall.url("/api/v1/items"),
            headers={"Host": host("bearer"), "Authorization": "bearer anythingatall",
                     "X-Remote-User": "mallory"},
        )
        assert answer.status == 200
        seen = seen_headers(await answer.json())
    assert seen["authorization"] == ["bearer anythingatall"]
    assert "x-remote-user" not in seen


async def test_bearer_is_refused_where_the_app_does_not_support_it(wall: Wall) -> None:
    async with plain_client() as client:
        answer = await client.get(
            wall.url("/api"), headers={"Host": host("whole"), "Authorization": "Bearer x"}
        )
        assert answer.status == 401
        # Without the flag, a session passes and the header goes on as it is.
        token = await wall.login(client, "whole", "alice")
        with_session = await client.get(
            wall.url("/api"),
            headers={"Host": host("whole"), "Authorization": "Bearer x",
                     **wall.session_header(token)},
        )
        assert with_session.status == 200
        assert seen_headers(await with_session.json())["authorization"] == ["Bearer x"]


# -- access ---------------------------------------------------------------------------


async def test_access_is_rechecked_on_every_request(wall: Wall) -> None:
    staff = await wall.store.groups.resolve("staff")
    async with plain_client() as client:
        token = await wall.login(client, "staff", "alice")
        headers = {"Host": host("staff"), **wall.session_header(token)}
        assert (await client.get(wall.url("/"), headers=headers)).status == 200
        await wall.accounts.remove_member(staff, wall.users["alice"])
        denied = await client.get(wall.url("/"), headers=headers, allow_redirects=False)
        assert denied.status == 403
        text = await denied.text()
        assert "alice" in text
        assert 'href="/logout"' in text
        await wall.accounts.add_member(staff, wall.users["alice"])
        assert (await client.get(wall.url("/"), headers=headers)).status == 200


async def test_a_session_is_worth_nothing_on_another_apps_host(wall: Wall) -> None:
    async with plain_client() as client:
        token = await wall.login(client, "whole", "alice")
        elsewhere = await client.get(
            wall.url("/admin"), headers={"Host": host("admin"), **wall.session_header(token)},
            allow_redirects=False,
        )
        assert elsewhere.status == 302


async def test_an_app_that_is_down_gets_the_platform_page(wall: Wall) -> None:
    async with plain_client() as client:
        token = await wall.login(client, "down", "alice")
        answer = await client.get(
            wall.url("/"), headers={"Host": host("down"), **wall.session_header(token)}
        )
        assert answer.status == 502
        assert "The app is not reachable" in await answer.text()
        api = await client.get(
            wall.url("/"),
            headers={"Host": host("down"), "Accept": "application/json",
                     **wall.session_header(token)},
        )
        assert api.status == 502
        assert (await api.json())["error"] == "The app is not reachable"
