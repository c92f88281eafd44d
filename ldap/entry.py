"""An entry of the directory, with everything a search needs precomputed.

Each attribute keeps its values as sent, their normalised forms (for filters) and its own
BER encoding; an entry keeps its whole SearchResultEntry for the common "all attributes"
answer. Entries are immutable: a change in the store replaces them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ldap import wire
from ldap.schema import Normalized, normalize, syntax_of


class Attribute:
    """Values as sent; their normalised forms and encoding are made on first use, so the
    memory of 10 000 users goes to what searches actually touch."""

    __slots__ = ("_norms", "_wire", "name", "values")

    def __init__(self, name: str, values: Sequence[str]) -> None:
        self.name = name
        self.values = tuple(values)
        self._norms: tuple[Normalized | None, ...] | None = None
        self._wire: bytes | None = None

    @property
    def norms(self) -> tuple[Normalized | None, ...]:
        if self._norms is None:
            syntax = syntax_of(self.name.lower())
            self._norms = tuple(normalize(syntax, v) for v in self.values)
        return self._norms

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            self._wire = wire.attribute(self.name, self.values)
        return self._wire

    @property
    def wire_type(self) -> bytes:
        return wire.attribute(self.name, ())


# Operational attributes (RFC 4512 3.4) an entry may carry; asked for by name or with "+".
OPERATIONAL = frozenset(
    {"entrydn", "structuralobjectclass", "hassubordinates", "createtimestamp", "modifytimestamp"}
)


class Entry:
    __slots__ = ("_operational", "_wire_all", "attributes", "dn", "key", "rdn")

    def __init__(
        self,
        dn: str,
        key: str,
        attributes: Iterable[tuple[str, Sequence[str]]],
        *,
        rdn: tuple[tuple[str, str], ...] = (),
        operational: Iterable[tuple[str, Sequence[str]]] = (),
    ) -> None:
        self.dn = dn
        self.key = key
        self.rdn = rdn
        # Empty values are not valid for directory strings: an attribute without any is left
        # out (Cloudron sent mailAlternateAddress even when empty).
        self.attributes: dict[str, Attribute] = {
            name.lower(): Attribute(name, [v for v in values if v != ""])
            for name, values in attributes
            if any(v != "" for v in values)
        }
        # Kept as given and made into attributes only when asked for: few clients ever do.
        self._operational = tuple(operational)
        self._wire_all: bytes | None = None

    @property
    def operational(self) -> dict[str, Attribute]:
        return {
            name.lower(): Attribute(name, values) for name, values in self._operational if values
        }

    def get(self, name: str) -> Attribute | None:
        found = self.attributes.get(name)
        if found is None and name in OPERATIONAL:
            return self.operational.get(name)
        return found

    def has(self, name: str) -> bool:
        return name in self.attributes or (name in OPERATIONAL and name in self.operational)

    def wire_all(self) -> bytes:
        """The SearchResultEntry with every user attribute (cached: the usual answer).

        Built from fresh attribute encodings, not the attributes' cached ones: kept here
        they would hold every byte twice, for every entry a search has returned.
        """
        if self._wire_all is None:
            self._wire_all = wire.search_entry(
                self.dn,
                [a._wire or wire.attribute(a.name, a.values) for a in self.attributes.values()],
            )
        return self._wire_all

    def __repr__(self) -> str:
        return f"Entry({self.dn!r})"
