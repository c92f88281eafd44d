"""Distinguished names: parsed by ldaptor, compared in normalised form.

Attribute types compare case-insensitively and every value here (ids, names, addresses,
the fixed OUs) is a directory string whose equality rule ignores case (RFC 4517
caseIgnoreMatch), so ``OU=Users,DC=Cloudron`` names the same entry as ``ou=users,dc=cloudron``.
(Cloudron's ldapjs compared values case-sensitively; nothing depends on that.)
"""

from __future__ import annotations

import functools

from ldaptor.protocols.ldap.distinguishedname import DistinguishedName, escape

from ldap.errors import InvalidDN

RDN = tuple[tuple[str, str], ...]
"""One RDN: its (lower-case type, unescaped value) pairs (several for ``a=1+b=2``)."""


# Characters that need ldaptor's parser (escapes, quoting, multi-valued RDNs, hex values,
# the old ';' separator); a DN without them splits on ',' and '=' to the same RDNs.
_SPECIAL = frozenset('\\"+#;<>')


@functools.lru_cache(maxsize=2048)
def parse_dn(text: str | bytes) -> tuple[RDN, ...]:
    """The RDNs of ``text``, leaf first; raises InvalidDN (invalidDNSyntax, 34).

    Cached: apps send the same few base DNs over and over. Plain DNs (most bind DNs, one
    per user, too many to cache) take a split that costs a fiftieth of ldaptor's parser.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidDN("DN is not UTF-8") from None
    if not text.strip():
        return ()
    rdns = _split_plain(text) if _SPECIAL.isdisjoint(text) else None
    if rdns is None:
        try:
            parsed = DistinguishedName(stringValue=text)
            rdns = tuple(
                tuple((ava.attributeType.strip().lower(), ava.value.strip())
                      for ava in rdn.split())
                for rdn in parsed.split()
            )
        except Exception:  # ldaptor raises its own type, IndexError or ValueError on bad input
            raise InvalidDN(f"invalid DN: {text!r}") from None
    for rdn in rdns:
        if not rdn:
            raise InvalidDN(f"empty RDN in DN: {text!r}")
        for attribute_type, _value in rdn:
            if not attribute_type or not _is_descr(attribute_type):
                raise InvalidDN(f"invalid attribute type in DN: {text!r}")
    return rdns


def _split_plain(text: str) -> tuple[RDN, ...] | None:
    """RDNs of a DN with no special characters; None when a part is not ``type=value``
    (ldaptor then decides, and names the error)."""
    rdns = []
    for part in text.split(","):
        attribute_type, eq, value = part.partition("=")
        if not eq or "=" in value:
            return None
        rdns.append(((attribute_type.strip().lower(), value.strip()),))
    return tuple(rdns)


def _is_descr(name: str) -> bool:
    return all(c.isalnum() or c in "-." for c in name) and name[0].isalnum()


def normalize_value(value: str) -> str:
    """caseIgnoreMatch with insignificant spaces (RFC 4518): trim, fold runs, fold case."""
    return " ".join(value.split()).casefold()


@functools.lru_cache(maxsize=1024)
def rdns_key(rdns: tuple[RDN, ...]) -> str:
    # Cached for the few keys asked for again and again (bases, their suffixes).
    return ",".join(
        "+".join(f"{t}={escape(normalize_value(v))}" for t, v in sorted(rdn)) for rdn in rdns
    )


def dn_key(text: str | bytes) -> str:
    """The normalised form two equal DNs share; raises InvalidDN."""
    return rdns_key(parse_dn(text))


def try_dn_key(text: str) -> str | None:
    try:
        return dn_key(text)
    except InvalidDN:
        return None


def join(attribute_type: str, value: str, parent: str) -> str:
    """A DN string ``type=value,parent`` with the value escaped."""
    rdn = f"{attribute_type}={escape(value)}"
    return f"{rdn},{parent}" if parent else rdn


def is_within(key: str, base_key: str) -> bool:
    """``key`` is ``base_key`` or below it (both normalised)."""
    if not base_key:
        return True
    return key == base_key or key.endswith("," + base_key)
