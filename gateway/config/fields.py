"""How a config field documents itself and states its bounds."""

from __future__ import annotations

from typing import Any


def doc(text: str, **bounds: Any) -> dict[str, Any]:
    """Field metadata: ``text`` goes into config.example.toml; ``min``/``max`` are checked."""
    return {"doc": text, **bounds}
