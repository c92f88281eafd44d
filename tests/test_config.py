"""The config: every error names its source and dotted key; env wins; secrets never print;
config.example.toml is what the schema renders and documents every key."""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Config, ConfigError, ListenAddress, Secret, load_config
from gateway.config.example import render_example
from gateway.config.loader import _build, env_names

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"
SECRET = "s3cret-value-that-must-not-print-4b7e"


def write(tmp_path: Path, text: str, name: str = "gateway.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def failure(path: Path | None, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={} if env is None else env)
    return caught.value


def schema_fields(cls: type = Config, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every key of the schema as (dotted key, dataclass field), sections walked."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        hint = hints[f.name]
        dotted = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hint) and hint not in (Secret, ListenAddress):
            yield from schema_fields(hint, dotted + ".")  # type: ignore[arg-type]
        else:
            yield dotted, f


# -- errors in the file -------------------------------------------------------------------------

FILE_ERRORS = {
    "unknown-key": ("[auth]\nbogus = 1\n", "auth.bogus", "unknown key"),
    "unknown-section": ("[nope]\nx = 1\n", "nope", "unknown key"),
    "unknown-top-level-key": ('source = "x"\n', "source", "unknown key"),
    "section-not-a-table": ("auth = 3\n", "auth", "must be a table"),
    "file-on-a-non-secret": (
        '[auth]\ntotp_window_file = "x"\n', "auth.totp_window_file", "only secrets"
    ),
    "int-wrong-type": ('[auth]\ntotp_window = "one"\n', "auth.totp_window", "whole number"),
    "int-given-bool": ("[auth]\ntotp_window = true\n", "auth.totp_window", "whole number"),
    "int-given-float": ("[auth]\ntotp_window = 1.5\n", "auth.totp_window", "whole number"),
    "bool-wrong-type": ("[runtime]\nuvloop = 1\n", "runtime.uvloop", "true or false"),
    "float-wrong-type": ('[auth]\ncache_ttl = "soon"\n', "auth.cache_ttl", "number"),
    "float-nan": ("[auth]\ncache_ttl = nan\n", "auth.cache_ttl", "finite"),
    "float-inf": ("[store]\npoll_interval = inf\n", "store.poll_interval", "finite"),
    "str-wrong-type": ("[store]\nurl = 5\n", "store.url", "string"),
    "path-wrong-type": ("[runtime]\ndata_dir = []\n", "runtime.data_dir", "path"),
    "above-max": ("[auth]\ntotp_window = 3\n", "auth.totp_window", "at most 2"),
    "below-min": ("[auth]\ncache_ttl = -1\n", "auth.cache_ttl", "at least 0"),
    "below-min-int": ("[auth]\nargon2_memory_kib = 512\n", "auth.argon2_memory_kib", "at least"),
    "bad-literal": ('[log]\nlevel = "loud"\n', "log.level", "one of debug, info"),
    "literal-wrong-case": ('[log]\nformat = "JSON"\n', "log.format", "one of json, text"),
    "listen-no-port": ('[admin]\nlisten = "localhost"\n', "admin.listen", "HOST:PORT"),
    "listen-port-too-big": ('[admin]\nlisten = "127.0.0.1:70000"\n', "admin.listen", "65535"),
    "listen-port-not-a-number": ('[admin]\nlisten = "[::1]:http"\n', "admin.listen", "port"),
    "listen-not-a-string": ("[admin]\nlisten = 9180\n", "admin.listen", "HOST:PORT"),
    "secret-not-a-string": ("[auth]\nsecret_key = 12\n", "auth.secret_key", "string"),
    "secret-file-not-a-string": ("[auth]\nsecret_key_file = 1\n", "auth.secret_key_file", "path"),
}


@pytest.mark.parametrize("case", FILE_ERRORS.values(), ids=FILE_ERRORS.keys())
def test_file_error_names_file_and_key(tmp_path: Path, case: tuple[str, str, str]) -> None:
    text, key, why = case
    path = write(tmp_path, text)
    error = failure(path)
    assert (error.source, error.key) == (str(path), key)
    assert why in error.why
    assert str(error).startswith(f"{path}: {key}: ")


def test_bad_toml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[auth]\ntotp_window = 1\ncache_ttl = "unterminated\n')
    error = failure(path)
    assert error.source == str(path)
    assert "not valid TOML" in error.why
    assert "line 3" in error.why


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    error = failure(path)
    assert error.source == str(path)
    assert "not found" in error.why


def test_good_file_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[auth]\ntotp_window = 2\ncache_ttl = 5\n[admin]\nlisten = "[::1]:0"\n'
        '[log]\nlevel = "debug"\n[runtime]\ndata_dir = "var"\n',
    )
    config = load_config(path, env={})
    assert config.source == str(path)
    assert config.auth.totp_window == 2
    assert config.auth.cache_ttl == 5.0
    assert isinstance(config.auth.cache_ttl, float)
    assert config.admin.listen == ListenAddress("::1", 0)
    assert str(config.admin.listen) == "[::1]:0"
    assert config.log.level == "debug"
    assert config.runtime.data_dir == Path("var")
    # Untouched keys keep their defaults.
    assert config.auth.cache_size == Config().auth.cache_size


def test_no_file_is_the_defaults() -> None:
    assert load_config(None, env={}) == Config()


# -- the environment -----------------------------------------------------------------------------


def test_env_wins_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[auth]\ntotp_window = 0\ncache_ttl = 5\n[log]\nlevel = "error"\n')
    config = load_config(
        path,
        env={
            "GATEWAY_AUTH_TOTP_WINDOW": "2",
            "GATEWAY_LOG_LEVEL": "warning",
            "GATEWAY_RUNTIME_UVLOOP": "off",
            "GATEWAY_ADMIN_LISTEN": "127.0.0.1:0",
            "GATEWAY_STORE_POLL_INTERVAL": "0.5",
            # Not ours, and the file's own name: both ignored.
            "HOME": "/nowhere",
            "GATEWAY_CONFIG": str(path),
        },
    )
    assert config.auth.totp_window == 2
    assert config.auth.cache_ttl == 5.0
    assert config.log.level == "warning"
    assert config.runtime.uvloop is False
    assert config.admin.listen == ListenAddress("127.0.0.1", 0)
    assert config.store.poll_interval == 0.5
    assert config.source == str(path)


ENV_ERRORS = {
    "above-max": ("GATEWAY_AUTH_TOTP_WINDOW", "9", "auth.totp_window", "at most"),
    "not-a-number": ("GATEWAY_AUTH_CACHE_SIZE", "lots", "auth.cache_size", "whole number"),
    "nan": ("GATEWAY_AUTH_CACHE_TTL", "nan", "auth.cache_ttl", "finite"),
    "bad-bool": ("GATEWAY_RUNTIME_UVLOOP", "maybe", "runtime.uvloop", "true or false"),
    "bad-literal": ("GATEWAY_LOG_FORMAT", "xml", "log.format", "one of"),
    "bad-listen": ("GATEWAY_ADMIN_LISTEN", "127.0.0.1", "admin.listen", "HOST:PORT"),
}


@pytest.mark.parametrize("case", ENV_ERRORS.values(), ids=ENV_ERRORS.keys())
def test_env_error_names_the_variable(tmp_path: Path, case: tuple[str, str, str, str]) -> None:
    var, value, key, why = case
    error = failure(write(tmp_path, "[auth]\ntotp_window = 1\n"), {var: value})
    assert (error.source, error.key) == (f"environment {var}", key)
    assert why in error.why


@pytest.mark.parametrize(
    "var", ["GATEWAY_AUTH_TOTP_WINDOWS", "GATEWAY_AUTH", "GATEWAY_NOPE", "GATEWAY_SOURCE"]
)
def test_unknown_gateway_variable_fails(var: str) -> None:
    error = failure(None, {var: "1"})
    assert (error.source, error.key) == ("environment", var)
    assert "unknown" in error.why


def test_every_key_has_an_environment_variable() -> None:
    names = env_names()
    for dotted, _ in schema_fields():
        var = "GATEWAY_" + dotted.replace(".", "_").upper()
        assert names.get(var) == tuple(dotted.split(".")), var


# -- secrets ------------------------------------------------------------------------------------


def test_secret_from_a_file_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "auth.key").write_text(SECRET + "\n")
    (tmp_path / "pg.pass").write_text("pg-" + SECRET)
    path = write(
        tmp_path,
        f'[auth]\nsecret_key_file = "keys/auth.key"\n'
        f'[store]\npassword_file = "{(tmp_path / "pg.pass").as_posix()}"\n',
    )
    config = load_config(path, env={})
    assert config.auth.secret_key == Secret(SECRET)
    assert config.store.password == Secret("pg-" + SECRET)


def test_secret_from_a_file_named_by_env(tmp_path: Path) -> None:
    secret_file = tmp_path / "auth.key"
    secret_file.write_text(SECRET + "\r\n")
    path = write(tmp_path, '[auth]\nsecret_key = "from-the-file"\n')
    config = load_config(path, env={"GATEWAY_AUTH_SECRET_KEY_FILE": str(secret_file)})
    assert config.auth.secret_key == Secret(SECRET)
    config = load_config(None, env={"GATEWAY_AUTH_SECRET_KEY": SECRET})
    assert config.auth.secret_key == Secret(SECRET)


@pytest.mark.parametrize("content", [None, "", "\n"], ids=["missing", "empty", "newline-only"])
def test_unusable_secret_file(tmp_path: Path, content: str | None) -> None:
    secret_file = tmp_path / "auth.key"
    if content is not None:
        secret_file.write_text(content)
    path = write(tmp_path, f'[auth]\nsecret_key_file = "{secret_file.as_posix()}"\n')
    error = failure(path)
    assert (error.source, error.key) == (str(path), "auth.secret_key_file")
    assert str(secret_file) in error.why
    assert ("cannot read" if content is None else "is empty") in error.why

    error = failure(None, {"GATEWAY_AUTH_SECRET_KEY_FILE": str(secret_file)})
    assert (error.source, error.key) == (
        "environment GATEWAY_AUTH_SECRET_KEY_FILE", "auth.secret_key_file"
    )


def test_secrets_never_print(tmp_path: Path) -> None:
    (tmp_path / "pg.pass").write_text("pg-" + SECRET)
    path = write(
        tmp_path, f'[auth]\nsecret_key = "{SECRET}"\n[store]\npassword_file = "pg.pass"\n'
    )
    config = load_config(path, env={})
    assert config.auth.secret_key is not None
    assert config.auth.secret_key.value == SECRET
    for shown in (repr(config), str(config), repr(config.auth), str(config.store),
                  f"{config.auth.secret_key}", repr(config.store.password)):
        assert SECRET not in shown
        assert "pg-" not in shown


# -- config.example.toml ----------------------------------------------------------------------


def test_example_is_what_the_schema_renders() -> None:
    assert EXAMPLE.read_text() == render_example(), (
        "config.example.toml is stale: regenerate it with "
        "`.venv/bin/gateway config example > config.example.toml`"
    )


def test_example_loads_cleanly() -> None:
    config = load_config(EXAMPLE, env={})
    assert dataclasses.replace(config, source=Config().source) == Config()


def uncommented(example: str) -> str:
    """The example with every documented key uncommented (secrets left unset)."""
    setting = re.compile(r"^# ([a-z0-9_]+ = .*)$")
    lines = []
    for line in example.splitlines():
        found = setting.match(line)
        if found and "(unset)" not in line:
            lines.append(found.group(1))
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def documented_keys(example: str) -> set[str]:
    """Dotted keys the example shows, set or ``(unset)``."""
    keys = set()
    section = ""
    for line in example.splitlines():
        if header := re.match(r"^\[([a-z0-9_.]+)\]$", line):
            section = header.group(1)
        elif shown := re.match(r"^# ([a-z0-9_]+) = ", line):
            keys.add(f"{section}.{shown.group(1)}")
    return keys


def test_example_documents_every_key_with_its_default(tmp_path: Path) -> None:
    # The rendering itself; test_example_is_what_the_schema_renders pins the file to it.
    example = render_example()
    assert documented_keys(example) == {dotted for dotted, _ in schema_fields()}
    # Every value shown is the real default, and valid.
    config = load_config(write(tmp_path, uncommented(example)), env={})
    assert dataclasses.replace(config, source=Config().source) == Config()


def test_every_field_has_a_doc() -> None:
    undocumented = [
        dotted for dotted, f in schema_fields() if not str(f.metadata.get("doc", "")).strip()
    ]
    assert undocumented == []


@dataclasses.dataclass(frozen=True)
class _CertSection:
    cert_file: Path | None = dataclasses.field(default=None, metadata={"doc": "A PEM file."})
    key: Secret | None = dataclasses.field(default=None, metadata={"doc": "A secret."})


def test_a_field_named_like_a_secret_file_is_an_ordinary_key(tmp_path: Path) -> None:
    # Only <secret>_file reads a file; a field whose own name ends in _file is a plain value.
    (tmp_path / "key").write_text(SECRET)
    built = _build(_CertSection, {"cert_file": "a.pem", "key_file": "key"}, ("tls",), "t", tmp_path)
    assert built == _CertSection(cert_file=Path("a.pem"), key=Secret(SECRET))
