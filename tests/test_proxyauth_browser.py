"""The login wall in a real browser: Debian's headless Chromium driven by Playwright (never a
downloaded browser), against a real app behind the wall.

The apps live under ``apps.localhost``: Chromium resolves ``*.localhost`` to loopback and
counts ``http://*.localhost`` as a secure context, so the wall runs with its production
cookie settings (``Secure``, the ``__Host-`` prefix) over plain HTTP on loopback, and the
test sees exactly what a user behind TLS would. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.proxyauth_support import PASSWORD, WRONG, Wall, new_password, running_wall

pytestmark = pytest.mark.asyncio

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
TIMEOUT_MS = 20_000
DOMAIN = "apps.localhost"


def host(app: str) -> str:
    return f"{app}.{DOMAIN}"


@pytest.fixture
async def wall(tmp_path: Path) -> AsyncIterator[Wall]:
    async with running_wall(
        tmp_path, domain=DOMAIN, title="Sign in to Example Cloud"
    ) as running:
        yield running


@pytest.fixture
async def browser(wall: Wall) -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("no chromium: install Debian's chromium package (apt-get install chromium)")
    playwright_api = pytest.importorskip("playwright.async_api")
    profile = tempfile.mkdtemp(prefix="proxyauth-chromium-")
    async with playwright_api.async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", f"--host-resolver-rules=MAP *.{DOMAIN} 127.0.0.1",
            ],
            viewport={"width": 1000, "height": 760},
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            await context.close()
            shutil.rmtree(profile, ignore_errors=True)


def at(wall: Wall, app: str, path: str) -> str:
    return f"http://{host(app)}:{wall.port}{path}"


async def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"proxyauth-{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000
    return path


async def app_view(page: Any) -> dict[str, Any]:
    """What the echo app answered (Chromium shows JSON as text)."""
    text = await page.locator("body").inner_text()
    seen: dict[str, Any] = json.loads(text)
    return seen


def header(seen: dict[str, Any], name: str) -> list[str]:
    return [v for k, v in seen["headers"] if k.lower() == name.lower()]


async def test_sign_in_with_2fa_land_and_sign_out(wall: Wall, browser: Any) -> None:
    page = await browser.new_page()

    # A walled path sends the browser to the login page, carrying where it was going.
    await page.goto(at(wall, "whole", "/docs/page?x=1"))
    assert page.url.startswith(at(wall, "whole", "/login?redirect="))
    heading = page.get_by_role("heading", level=1)
    assert await heading.inner_text() == "Sign in to Example Cloud"
    assert await page.title() == f"Sign in to Example Cloud · {host('whole')}"
    # The fields are labelled (what a screen reader announces) and autofill-friendly.
    username = page.get_by_label("Username or email")
    password = page.get_by_label("Password")
    assert await username.get_attribute("autocomplete") == "username"
    assert await password.get_attribute("autocomplete") == "current-password"
    await shot(page, "login")

    # A wrong password: the one message, announced, and nothing else given away.
    await username.fill("bob")
    await password.fill(WRONG)
    await page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    assert "not right" in await alert.inner_text()
    assert await page.get_by_label("Username or email").input_value() == "bob"
    await shot(page, "login-failed")

    # The right password: bob has 2FA, so the code step comes next.
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    code = page.get_by_label("Authentication code")
    await code.wait_for()
    assert await code.get_attribute("autocomplete") == "one-time-code"
    assert await code.get_attribute("inputmode") == "numeric"
    assert PASSWORD not in await page.content()
    await shot(page, "totp")
    await code.fill(wall.totp["bob"].now())
    await page.get_by_role("button", name="Verify").click()

    # Landed on the page first asked for; the app saw who it is, and not the cookie.
    await page.wait_for_url(at(wall, "whole", "/docs/page?x=1"))
    seen = await app_view(page)
    assert seen["path"] == "/docs/page?x=1"
    assert header(seen, "X-Remote-User") == ["bob"]
    assert header(seen, "X-Remote-Groups") == ["staff"]
    assert wall.cookie_name not in " ".join(header(seen, "Cookie"))
    cookies = {c["name"]: c for c in await browser.cookies(at(wall, "whole", "/"))}
    session = cookies[wall.cookie_name]
    assert session["httpOnly"] is True
    assert session["secure"] is True
    assert session["sameSite"] == "Lax"
    assert session["domain"] == host("whole")  # host-only

    # Sign out: the app's usual link to /logout.
    await page.goto(at(wall, "whole", "/logout"))
    assert await page.get_by_role("heading", level=1).inner_text() == "You are signed out"
    await shot(page, "signed-out")
    await page.goto(at(wall, "whole", "/docs/page?x=1"))
    assert page.url.startswith(at(wall, "whole", "/login"))


async def test_a_password_change_ends_the_browser_session(wall: Wall, browser: Any) -> None:
    page = await browser.new_page()
    await page.goto(at(wall, "staff", "/reports"))
    await page.get_by_label("Username or email").fill("alice@example.test")  # by email
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(at(wall, "staff", "/reports"))
    assert header(await app_view(page), "X-Remote-User") == ["alice"]

    await page.reload()
    assert header(await app_view(page), "X-Remote-User") == ["alice"]

    await wall.accounts.set_password(wall.users["alice"], new_password())
    await page.reload()
    assert page.url.startswith(at(wall, "staff", "/login?redirect="))
    assert await page.get_by_role("button", name="Sign in").is_visible()


async def test_loss_of_access_shows_the_403_page(wall: Wall, browser: Any) -> None:
    page = await browser.new_page()
    await page.goto(at(wall, "staff", "/"))
    await page.get_by_label("Username or email").fill("alice")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(at(wall, "staff", "/"))
    staff = await wall.store.groups.resolve("staff")
    await wall.accounts.remove_member(staff, wall.users["alice"])
    response = await page.reload()
    assert response is not None
    assert response.status == 403
    assert await page.get_by_role("heading", level=1).inner_text() == "No access"
    await shot(page, "no-access")
    await page.get_by_role("link", name="Sign out and use another account").click()
    assert await page.get_by_role("heading", level=1).inner_text() == "You are signed out"
