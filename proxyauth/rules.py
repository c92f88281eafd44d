"""An app's wall rule, from its manifest's ``proxyAuth`` addon (SPEC.md "proxyAuth").

``path`` is a plain string prefix with nginx's semantics, not a path-segment prefix, which is
what apps were packaged against: ``/admin`` also walls ``/administrator``, and ``!/webhooks``
(everything but) also leaves ``/webhooks2`` open. It is matched on ``paths.normalise``'s
result, the same path the app receives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proxyauth.errors import MalformedRequest
from proxyauth.paths import normalise


@dataclass(frozen=True)
class WallRule:
    prefix: str = ""
    invert: bool = False
    basic_auth: bool = False
    bearer_auth: bool = False

    def walls(self, path: str) -> bool:
        """Whether ``path`` (normalised) needs a signed-in user."""
        if not self.prefix:
            # No path: the whole site. A bare "!" excludes everything, walling nothing.
            return not self.invert
        hit = path.startswith(self.prefix)
        return not hit if self.invert else hit

    @classmethod
    def from_manifest(cls, addon: Mapping[str, Any] | None) -> WallRule:
        """The rule of ``manifest["addons"]["proxyAuth"]``; odd values wall everything.

        A path the wall cannot make sense of fails closed (the whole site walled) rather
        than open.
        """
        addon = addon if isinstance(addon, Mapping) else {}
        basic = addon.get("basicAuth") is True
        bearer = addon.get("supportsBearerAuth") is True
        path = addon.get("path")
        if path is None or path == "":
            return cls(basic_auth=basic, bearer_auth=bearer)
        if not isinstance(path, str):
            return cls(basic_auth=basic, bearer_auth=bearer)
        invert = path.startswith("!")
        prefix = path[1:] if invert else path
        if prefix and not prefix.startswith("/"):
            prefix = "/" + prefix
        try:
            # Keep a trailing slash: "/admin/" walls "/admin/x" but not "/admin".
            prefix = normalise(prefix) if prefix else ""
        except MalformedRequest:
            return cls(basic_auth=basic, bearer_auth=bearer)
        if prefix == "/":
            prefix = ""
        return cls(prefix=prefix, invert=invert, basic_auth=basic, bearer_auth=bearer)

    def describe(self) -> str:
        if not self.prefix:
            return "nothing" if self.invert else "everything"
        return f"everything but {self.prefix}*" if self.invert else f"{self.prefix}*"
