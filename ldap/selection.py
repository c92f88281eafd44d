"""Which attributes a search returns (RFC 4511 section 4.5.1.8, RFC 3673).

No list or ``*``: every user attribute. ``+``: every operational one. ``1.1`` alone: none.
Named attributes are matched case-insensitively (options like ``;binary`` dropped) and come
back spelled as the entry spells them. Unknown names are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable

from ldap import wire
from ldap.entry import Entry
from ldap.schema import attribute_name


class AttributeSelection:
    __slots__ = ("all_operational", "all_user", "names", "types_only")

    def __init__(self, requested: Iterable[str | bytes], *, types_only: bool = False) -> None:
        names = [attribute_name(r) for r in requested]
        self.types_only = types_only
        self.all_user = not names or "*" in names
        self.all_operational = "+" in names
        self.names = tuple(
            dict.fromkeys(n for n in names if n not in ("*", "+", "1.1") and n)
        )

    @property
    def is_everything_user(self) -> bool:
        """The common answer (all user attributes, values): the entry's cached encoding."""
        return self.all_user and not self.all_operational and not self.names \
            and not self.types_only

    def encode(self, entry: Entry) -> bytes:
        if self.is_everything_user:
            return entry.wire_all()
        parts: list[bytes] = []
        chosen: set[str] = set()
        if self.all_user:
            chosen.update(entry.attributes)
            parts.extend(self._one(a) for a in entry.attributes.values())
        for name in self.names:
            if name in chosen:
                continue
            attribute = entry.get(name)
            if attribute is not None:
                chosen.add(name)
                parts.append(self._one(attribute))
        if self.all_operational:
            parts.extend(
                self._one(a) for n, a in entry.operational.items() if n not in chosen
            )
        return wire.search_entry(entry.dn, parts)

    def _one(self, attribute: object) -> bytes:
        return attribute.wire_type if self.types_only else attribute.wire  # type: ignore[attr-defined,no-any-return]
