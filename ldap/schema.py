"""How each attribute's values compare: the few syntaxes this directory's entries use.

Everything is a directory string (caseIgnoreMatch, substrings and ordering ignoring case)
unless listed: DN-valued attributes compare as normalised DNs (so ``memberOf=CN=Admins,…``
matches), ``gidnumber`` as an integer.
"""

from __future__ import annotations

import enum

from ldap.dn import normalize_value, try_dn_key


class Syntax(enum.Enum):
    STRING = "string"
    DN = "dn"
    INTEGER = "integer"


SYNTAX: dict[str, Syntax] = {
    "memberof": Syntax.DN,
    "member": Syntax.DN,
    "uniquemember": Syntax.DN,
    "entrydn": Syntax.DN,
    "namingcontexts": Syntax.DN,
    "gidnumber": Syntax.INTEGER,
    "supportedldapversion": Syntax.INTEGER,
}

Normalized = str | int


def syntax_of(name: str) -> Syntax:
    return SYNTAX.get(name, Syntax.STRING)


def attribute_name(description: str | bytes) -> str:
    """The lower-case attribute type of a description, options (``;binary``) dropped."""
    if isinstance(description, bytes):
        description = description.decode("utf-8", "replace")
    return description.split(";", 1)[0].strip().lower()


def normalize(syntax: Syntax, value: str) -> Normalized | None:
    """The value as its equality rule sees it; None when it is not valid for the syntax
    (an assertion like that evaluates to Undefined, RFC 4511 section 4.5.1.7)."""
    if syntax is Syntax.STRING:
        return normalize_value(value)
    if syntax is Syntax.DN:
        return try_dn_key(value)
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    return None
