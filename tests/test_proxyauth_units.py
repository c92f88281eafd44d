"""The wall's small pieces on their own: path normalisation and redirect targets (with
properties checked by hypothesis), wall rules, trusted proxies, the form throttle, the
pending 2FA step, and the config checks.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import unquote, urljoin, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from gateway.config import ConfigError
from gateway.config.proxyauth import ProxyAuthConfig
from proxyauth.errors import MalformedRequest
from proxyauth.forwarded import TrustedProxies, split_host
from proxyauth.headers import upstream_request_headers, without_cookies
from proxyauth.paths import encode, normalise, safe_target
from proxyauth.pending import MAX_CODE_ATTEMPTS, PendingLogins
from proxyauth.rules import WallRule
from proxyauth.server import check_config
from proxyauth.throttle import FormThrottle, bucket_key

# Raw paths built from the pieces that make normalisation interesting.
PATH_TEXT = st.lists(
    st.sampled_from([*"/.%2aAdmin-_~?é", "%2e", "%2f", "%2F", "%61", "%25", "//", "%ff", "%00"]),
    max_size=30,
).map("".join)


# -- paths ------------------------------------------------------------------------------


@given(PATH_TEXT)
def test_normalising_is_idempotent_and_survives_the_trip_to_the_app(text: str) -> None:
    raw = "/" + text.partition("?")[0]
    try:
        path = normalise(raw)
    except MalformedRequest:
        return
    assert path.startswith("/")
    assert "//" not in path
    assert "/./" not in path + "/"
    assert "/../" not in path + "/"
    # What the wall sends is what it judged: the app decoding it once gets the same path.
    wire = encode(path)
    assert unquote(wire, errors="surrogateescape") == path
    assert normalise(wire) == path


@given(st.text(max_size=60))
def test_accepted_redirect_targets_never_leave_the_origin(target: str) -> None:
    accepted = safe_target(target, fallback="/")
    base = "https://app.example.test/login"
    resolved = urlsplit(urljoin(base, accepted))
    assert (resolved.scheme, resolved.netloc) == ("https", "app.example.test")


@pytest.mark.parametrize(
    "target", ["//evil.test", "https://evil.test", "/\\evil.test", "\\\\evil.test",
               "/\t/evil.test", "/\n/evil.test", "javascript:alert(1)", "evil.test", "/logout"],
)
def test_unsafe_targets_fall_back(target: str) -> None:
    assert safe_target(target, fallback="/") == "/"


def test_safe_targets_are_kept_as_given() -> None:
    assert safe_target("/docs/a%20b?x=1&y=%2F#top") == "/docs/a%20b?x=1&y=%2F#top"


# -- rules ------------------------------------------------------------------------------


def test_wall_rules_from_manifests() -> None:
    assert WallRule.from_manifest({}).walls("/anything")
    admin = WallRule.from_manifest({"path": "/admin", "basicAuth": True})
    assert admin.basic_auth
    assert not admin.bearer_auth
    assert admin.walls("/administrator")
    assert not admin.walls("/")
    hooks = WallRule.from_manifest({"path": "!/webhooks", "supportsBearerAuth": True})
    assert hooks.bearer_auth
    assert not hooks.walls("/webhooks2")
    assert hooks.walls("/")
    # Odd values fail closed: the whole site walled, flags only when exactly true.
    assert WallRule.from_manifest({"path": 42}).walls("/x")
    assert WallRule.from_manifest({"path": "/a\\b"}).walls("/x")
    assert not WallRule.from_manifest({"basicAuth": "yes"}).basic_auth
    assert WallRule.from_manifest({"path": "admin"}).prefix == "/admin"
    assert WallRule.from_manifest({"path": "/%61dmin"}).walls("/admin")
    assert not WallRule.from_manifest({"path": "!"}).walls("/x")


# -- trusted proxies and headers --------------------------------------------------------


class FakeRequest:
    """What the wall reads of a request: headers, the transport (TLS or not), and the
    connection's peer as aiohttp's protocol keeps it."""

    def __init__(self, peer: str, headers: dict[str, str]) -> None:
        self.headers = CIMultiDict(headers)
        self.transport = self
        self.protocol = self

    def get_extra_info(self, name: str) -> object:
        return None

    @property
    def peername(self) -> tuple[str, int]:
        return (self.peer, 1234)

    peer = ""


def view(proxies: TrustedProxies, peer: str, **headers: str):  # type: ignore[no-untyped-def]
    request = FakeRequest(peer, {k.replace("_", "-"): v for k, v in headers.items()})
    request.peer = peer
    return proxies.view(request)  # type: ignore[arg-type]


def test_forwarded_headers_only_from_trusted_peers() -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "::1/128"])
    spoofed = view(proxies, "203.0.113.5", Host="app.test", X_Forwarded_For="1.2.3.4",
                   X_Forwarded_Proto="https", X_Forwarded_Host="evil.test")
    assert (spoofed.client_ip, spoofed.scheme, spoofed.host) == ("203.0.113.5", "http", "app.test")
    assert spoofed.forwarded_for == "203.0.113.5"
    # Behind trusted proxies: the right-most untrusted address is the client, so a
    # client cannot choose its address by prepending one.
    chained = view(proxies, "10.0.0.1", Host="x", X_Forwarded_For="6.6.6.6, 198.51.100.9, 10.0.0.2",
                   X_Forwarded_Proto="https", X_Forwarded_Host="App.Test.:8443")
    assert chained.client_ip == "198.51.100.9"
    assert chained.forwarded_for == "198.51.100.9, 10.0.0.2, 10.0.0.1"
    assert (chained.scheme, chained.host, chained.port) == ("https", "app.test", 8443)
    assert chained.origin == "https://app.test:8443"
    assert view(proxies, "::ffff:10.1.2.3", Host="h").trusted_peer
    assert not view(TrustedProxies([]), "127.0.0.1", Host="h").trusted_peer


def test_split_host() -> None:
    assert split_host("App.Example.TEST.:8080") == ("app.example.test", 8080)
    assert split_host("[::1]:443") == ("::1", 443)
    assert split_host("bad host") == ("", None)
    assert split_host("x:99999") == ("", None)


def test_cookie_stripping_keeps_the_rest_verbatim() -> None:
    assert without_cookies("a=1; gw=secret; b=x=y", ["gw"]) == "a=1; b=x=y"
    assert without_cookies("gw=secret", ["gw"]) == ""


def test_connection_listed_headers_are_hop_by_hop() -> None:
    proxies = TrustedProxies([])
    client = view(proxies, "127.0.0.1", Host="app.test")
    headers = CIMultiDict({
        "Connection": "close, X-Private", "X-Private": "1", "X-Kept": "2",
        "X_Remote_Groups": "admins", "Upgrade": "h2c",
    })
    out = upstream_request_headers(
        headers, client, identity=None, cookie_names=["gw"]  # type: ignore[arg-type]
    )
    assert "X-Private" not in out
    assert "Upgrade" not in out
    assert "X_Remote_Groups" not in out
    assert out["X-Kept"] == "2"


# -- throttle and the pending step ------------------------------------------------------


def test_form_throttle_refills_over_time() -> None:
    now = [100.0]
    throttle = FormThrottle(rate=2.0, burst=3, clock=lambda: now[0])
    assert [throttle.take("192.0.2.1") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert throttle.take("192.0.2.1") == pytest.approx(0.5)
    assert throttle.take("192.0.2.2") == 0.0  # another address has its own bucket
    now[0] += 0.5
    assert throttle.take("192.0.2.1") == 0.0
    assert bucket_key("2001:db8::1") == bucket_key("2001:db8::ffff") == "2001:db8::/64"


def test_pending_logins_expire_and_run_out() -> None:
    now = [0.0]
    pending = PendingLogins(300.0, clock=lambda: now[0])
    pending.put("flow", login="bob", password="pw", app_id="app", target="/")
    assert pending.get("flow", "other-app") is None  # and gone: bound to its app
    pending.put("flow", login="bob", password="pw", app_id="app", target="/")
    assert "pw" not in repr(pending.get("flow", "app"))
    for _ in range(MAX_CODE_ATTEMPTS - 1):
        assert not pending.failed("flow")
    assert pending.failed("flow")
    assert pending.get("flow", "app") is None
    pending.put("late", login="bob", password="pw", app_id="app", target="/")
    now[0] += 301
    assert pending.get("late", "app") is None


# -- config -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"trusted_proxies": ["10.0.0.0/33"]}, "proxyauth.trusted_proxies"),
        ({"session_storage": "memcached://x"}, "proxyauth.session_storage"),
        ({"forward_auth_path": "/login"}, "proxyauth.forward_auth_path"),
        ({"forward_auth_path": "auth"}, "proxyauth.forward_auth_path"),
        ({"session_idle": 7200.0, "session_lifetime": 3600.0}, "proxyauth.session_idle"),
        ({"cookie_name": "a;b"}, "proxyauth.cookie_name"),
    ],
)
def test_config_checks_name_the_key(change: dict[str, object], key: str) -> None:
    config = dataclasses.replace(ProxyAuthConfig(), **change)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as refused:
        check_config(config, "gateway.toml")
    assert refused.value.key == key
    assert refused.value.source == "gateway.toml"


def test_defaults_are_the_safe_ones() -> None:
    config = ProxyAuthConfig()
    check_config(config)
    assert (config.listen.host, config.listen.port) == ("127.0.0.1", 8080)
    assert config.trusted_proxies == []
    assert config.secure_cookies is True
    assert config.session_storage == "store"
    assert config.session_lifetime <= 7 * 86_400
