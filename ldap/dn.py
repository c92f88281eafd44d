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


@functools.lru_cache(maxsize=8192)
def parse_dn(text: str | bytes) -> tuple[RDN, ...]:
    """The RDNs of ``text``, leaf first; raises InvalidDN (invalidDNSyntax, 34).

    Cached: apps send the same few base and bind DNs over and over, and ldaptor's parser
    costs more than the rest of a search.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidDN("DN is not UTF-8") from None
    if not text.strip():
        return ()
    try:
        parsed = DistinguishedName(stringValue=text)
        rdns = tuple(
            tuple((ava.attributeType.strip().lower(), ava.value.strip()) for ava in rdn.split())
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


def _is_descr(name: str) -> bool:
    return all(c.isalnum() or c in "-." for c in name) and name[0].isalnum()


def normalize_value(value: str) -> str:
    """caseIgnoreMatch with insignificant spaces (RFC 4518): trim, fold runs, fold case."""
    return " ".join(value.split()).casefold()


def rdns_key(rdns: tuple[RDN, ...]) -> str:
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
