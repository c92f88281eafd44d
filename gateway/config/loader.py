"""Read the TOML file and GATEWAY_* environment variables into the typed schema.

The schema is walked field by field, so an unknown key, a wrong type or a value out of
bounds fails at start with the file, the dotted key and the reason.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from gateway.config.errors import ConfigError
from gateway.config.model import Config, ListenAddress, Secret

ENV_PREFIX = "GATEWAY_"
T = TypeVar("T")


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Build the config from an optional TOML file, then environment overrides.

    ``env`` defaults to ``os.environ``; tests pass their own mapping.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(source, "-", "file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, "-", f"not valid TOML: {exc}") from None
    config = _build(Config, raw, (), source, base_dir=path.parent if path else Path.cwd())
    overrides = _env_overrides(env)
    if overrides:
        config = _apply_env(config, overrides)
    return dataclasses.replace(config, source=source)


def _fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {
        f.name: f
        for f in dataclasses.fields(cls)
        if not f.metadata.get("internal")
    }


def _build(cls: type[T], raw: Mapping[str, Any], prefix: tuple[str, ...], source: str,
           base_dir: Path) -> T:
    hints = typing.get_type_hints(cls)
    fields = _fields(cls)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        # ``<secret>_file`` names a file holding the secret; a field whose own name ends in
        # _file (a certificate path, say) is an ordinary key.
        name = key[: -len("_file")] if key.endswith("_file") and key not in fields else key
        dotted = ".".join((*prefix, key))
        if name not in fields:
            raise ConfigError(source, dotted, "unknown key")
        hint = hints[name]
        if name != key:
            if not _is_secret(hint):
                raise ConfigError(source, dotted, "unknown key (only secrets take _file)")
            values[name] = _read_secret_file(value, source, dotted, base_dir)
            continue
        if _is_section(hint):
            if not isinstance(value, dict):
                raise ConfigError(source, dotted, "must be a table")
            values[name] = _build(hint, value, (*prefix, key), source, base_dir)  # type: ignore[arg-type]
            continue
        values[name] = _convert(value, hint, fields[name], source, dotted)
    return cls(**values)


def _is_section(hint: Any) -> bool:
    """A nested table of the schema; Secret and ListenAddress are values, not tables."""
    return dataclasses.is_dataclass(hint) and hint not in (Secret, ListenAddress)


def _is_secret(hint: Any) -> bool:
    return hint is Secret or Secret in get_args(hint)


def _read_secret_file(value: Any, source: str, dotted: str, base_dir: Path) -> Secret:
    if not isinstance(value, str):
        raise ConfigError(source, dotted, "must be a file path")
    path = Path(value)
    if not path.is_absolute():
        path = base_dir / path
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(source, dotted, f"cannot read {path}: {exc.strerror}") from None
    secret = text.rstrip("\r\n")
    if not secret:
        raise ConfigError(source, dotted, f"{path} is empty")
    return Secret(secret)


def _convert(value: Any, hint: Any, f: dataclasses.Field[Any], source: str, dotted: str) -> Any:
    try:
        converted = _coerce(value, hint)
    except (TypeError, ValueError) as exc:
        raise ConfigError(source, dotted, str(exc)) from None
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if lo is not None and converted < lo:
        raise ConfigError(source, dotted, f"must be at least {lo} (got {converted})")
    if hi is not None and converted > hi:
        raise ConfigError(source, dotted, f"must be at most {hi} (got {converted})")
    return converted


def _coerce(value: Any, hint: Any) -> Any:
    """Turn a TOML value (or an environment string) into the field's type."""
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if value is None or value == "":
            return None
        return _coerce(value, args[0])
    if origin is Literal:
        choices = get_args(hint)
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(map(str, choices))} (got {value!r})")
        return value
    if origin is list:
        (item,) = get_args(hint)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise TypeError("must be a list")
        return [_coerce(v, item) for v in value]
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on"}:
            return True
        if isinstance(value, str) and value.lower() in {"0", "false", "no", "off"}:
            return False
        raise TypeError(f"must be true or false (got {value!r})")
    if hint is int:
        if isinstance(value, bool):
            raise TypeError(f"must be a whole number (got {value!r})")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise TypeError(f"must be a whole number (got {value!r})")
    if hint is float:
        if isinstance(value, bool):
            raise TypeError(f"must be a number (got {value!r})")
        number = value
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise TypeError(f"must be a number (got {value!r})") from None
        # NaN compares false with every bound, so it would slip past min and max.
        if not isinstance(number, int | float) or not math.isfinite(number):
            raise TypeError(f"must be a finite number (got {value!r})")
        return float(number)
    if hint is str:
        if not isinstance(value, str):
            raise TypeError(f"must be a string (got {value!r})")
        return value
    if hint is Path:
        if not isinstance(value, str):
            raise TypeError(f"must be a path (got {value!r})")
        return Path(value)
    if hint is Secret:
        if not isinstance(value, str) or not value:
            raise TypeError("must be a non-empty string")
        return Secret(value)
    if hint is ListenAddress:
        if not isinstance(value, str):
            raise TypeError(f"must be HOST:PORT (got {value!r})")
        return ListenAddress.parse(value)
    raise TypeError(f"unsupported type {hint!r}")


def env_names(cls: type = Config, prefix: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    """Every GATEWAY_* variable the schema accepts, mapped to its dotted key path."""
    names: dict[str, tuple[str, ...]] = {}
    hints = typing.get_type_hints(cls)
    for name in _fields(cls):
        path = (*prefix, name)
        hint = hints[name]
        if _is_section(hint):
            names.update(env_names(hint, path))  # type: ignore[arg-type]
            continue
        names[ENV_PREFIX + "_".join(path).upper()] = path
        if _is_secret(hint):
            names[ENV_PREFIX + "_".join(path).upper() + "_FILE"] = (*path[:-1], name + "_file")
    return names


def _env_overrides(env: Mapping[str, str]) -> dict[tuple[str, ...], tuple[str, str]]:
    known = env_names()
    found: dict[tuple[str, ...], tuple[str, str]] = {}
    for var, value in env.items():
        if not var.startswith(ENV_PREFIX):
            continue
        if var not in known:
            # GATEWAY_CONFIG names the file itself; anything else is a typo worth failing on.
            if var == "GATEWAY_CONFIG":
                continue
            raise ConfigError("environment", var, "unknown variable")
        found[known[var]] = (var, value)
    return found


def _apply_env(config: Config, overrides: dict[tuple[str, ...], tuple[str, str]]) -> Config:
    by_section: dict[tuple[str, ...], dict[str, tuple[str, str]]] = {}
    for path, item in overrides.items():
        by_section.setdefault(path[:-1], {})[path[-1]] = item
    for section_path, items in by_section.items():
        config = _replace_in(config, section_path, items, section_path)
    return config


def _replace_in(obj: Any, section_path: tuple[str, ...], items: dict[str, tuple[str, str]],
                full_path: tuple[str, ...]) -> Any:
    if section_path:
        head, *rest = section_path
        inner = _replace_in(getattr(obj, head), tuple(rest), items, full_path)
        return dataclasses.replace(obj, **{head: inner})
    hints = typing.get_type_hints(type(obj))
    fields = _fields(type(obj))
    changes: dict[str, Any] = {}
    for key, (var, value) in items.items():
        source = f"environment {var}"
        dotted = ".".join((*full_path, key))
        if key.endswith("_file") and key[: -len("_file")] in fields:
            changes[key[: -len("_file")]] = _read_secret_file(value, source, dotted, Path.cwd())
            continue
        changes[key] = _convert(value, hints[key], fields[key], source, dotted)
    return dataclasses.replace(obj, **changes)
