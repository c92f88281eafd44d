"""Render config.example.toml from the schema, so the example documents every key.

``gateway config example > config.example.toml`` writes it; a test fails when the file in
the repository differs from what the schema renders.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

from gateway.config.model import Config, ListenAddress, Secret

HEADER = """\
# The gateway suite's configuration. Every key is shown with its default, commented out:
# uncomment what you change. Any key can also be set with an environment variable
# GATEWAY_<SECTION>_<KEY> (for example GATEWAY_STORE_URL); secrets can come from a file
# with <key>_file = "/path" (or GATEWAY_<SECTION>_<KEY>_FILE).
"""


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path | ListenAddress):
        text = str(value)
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot render {value!r}")


def _wrap(text: str, width: int = 92) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    if current:
        lines.append(current)
    return lines


def _section(cls: type, name: str, out: list[str]) -> None:
    hints = typing.get_type_hints(cls)
    out.append(f"[{name}]")
    nested = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint) and hint not in (Secret, ListenAddress):
            nested.append((hint, f"{name}.{f.name}"))
            continue
        out.extend(f"# {line}" for line in _wrap(f.metadata.get("doc", "")))
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if default is None:
            secret = hint is Secret or Secret in typing.get_args(hint)
            hint_text = " (or " + f.name + "_file)" if secret else ""
            out.append(f"# {f.name} = (unset){hint_text}")
        else:
            out.append(f"# {f.name} = {_toml_value(default)}")
        out.append("")
    for hint, child in nested:
        _section(hint, child, out)


def render_example() -> str:
    out = [HEADER]
    hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        if f.metadata.get("internal"):
            continue
        _section(hints[f.name], f.name, out)
    return "\n".join(out).rstrip() + "\n"
