"""A real LDAP consumer from Debian end to end: Apache httpd's mod_authnz_ldap protecting a
page. It binds as the app, searches the user by username, binds as the user to check the
password, then checks the group by DN-valued ``member`` — Nextcloud's and Gitea's flow."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request

from gateway.store.models import AccessRestriction
from tests.ldap.apache import SECRET_PAGE, Apache
from tests.ldap.clients import blocking
from tests.ldap.world import PASSWORD, World


def fetch(url: str, user: str | None, password: str | None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


async def test_apache_mod_authnz_ldap(world: World) -> None:
    intranet = await world.add_app(
        "intranet", access=AccessRestriction(users=(world.users["dave"].id,),
                                             groups=(world.groups["staff"],)))
    apache = Apache(server=intranet.server, ldap_port=intranet.port, bind_dn=intranet.bind_dn,
                    bind_password=intranet.password, group_name="staff")
    try:
        await apache.start()
        ok = await blocking(fetch, apache.url, "bob", PASSWORD)
        assert ok == (200, SECRET_PAGE), apache.log()
        assert await blocking(fetch, apache.url, "carol", PASSWORD) == (200, SECRET_PAGE)
        assert (await blocking(fetch, apache.url, "bob", "wrong"))[0] == 401
        assert (await blocking(fetch, apache.url, "nobody", PASSWORD))[0] == 401
        assert (await blocking(fetch, apache.url, None, None))[0] == 401
        # dave may use the app but is not in the required group.
        assert (await blocking(fetch, apache.url, "dave", PASSWORD))[0] == 401
        # Removing bob from the group takes effect at the next request.
        await world.store.groups.remove_member(world.groups["staff"], world.users["bob"].id)
        await world.settled()
        assert (await blocking(fetch, apache.url, "bob", PASSWORD))[0] == 401
        await world.audit.flush()
        logins = await world.store.audit.recent(action="user.login", door="ldap")
        assert any(e.app_id == intranet.app.id for e in logins)
    finally:
        apache.stop()
