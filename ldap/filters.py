"""Search filters, evaluated the RFC 4511 way (section 4.5.1.7) against our entries.

A filter is compiled once per search into nested closures answering True, False or None
(Undefined, which only NOT and the outer "is it TRUE" test tell apart from FALSE).
Attribute names are case-insensitive; directory strings compare with caseIgnoreMatch, so
``(displayname=Alice Example)`` matches (Cloudron lowercased the filter and lost this).
Unsupported matching rules and assertion values invalid for the syntax are Undefined —
answered, never a crash (ldap-filter threw on ``~=`` and extensible matches).

``plan`` answers the user entries a filter can possibly match from the value index, or
None when only a scan can tell; ``matches`` still decides every candidate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ldaptor.protocols import pureldap

from ldap.dn import normalize_value
from ldap.entry import Entry
from ldap.errors import AdminLimitExceeded, ProtocolError
from ldap.schema import Normalized, Syntax, attribute_name, normalize, syntax_of

Tri = bool | None
Predicate = Callable[[Entry], Tri]
# The value index: attribute -> normalised value -> the key of the one entry holding it, or
# the set of keys when several do (most values are unique: a set each would cost 17 MB at
# 10 000 users).
Index = dict[str, dict[Normalized, "str | set[str]"]]
Plan = Callable[[Index], "set[str] | None"]

# Extensible-match rules (RFC 4517 section 4.2 and Active Directory's).
CASE_IGNORE = {"2.5.13.2", "caseignorematch", "2.5.13.4", "caseignoresubstringsmatch"}
CASE_EXACT = {"2.5.13.5", "caseexactmatch"}
DN_MATCH = {"2.5.13.1", "distinguishednamematch"}
INTEGER_MATCH = {"2.5.13.14", "integermatch"}
IN_CHAIN = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN: our groups are flat
BIT_AND = "1.2.840.113556.1.4.803"
BIT_OR = "1.2.840.113556.1.4.804"


@dataclass(frozen=True)
class CompiledFilter:
    matches: Predicate
    plan: Plan
    node: Any

    def accepts(self, entry: Entry) -> bool:
        return self.matches(entry) is True

    @property
    def text(self) -> str:
        """The filter as RFC 4515 text, for logs (made only when asked for)."""
        try:
            return _text(self.node.asText())
        except Exception:
            return type(self.node).__name__


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if hasattr(value, "value"):
        return _text(value.value)
    return str(value)


def _no_plan(_values: Index) -> set[str] | None:
    return None


def compile_filter(node: Any, max_depth: int = 32) -> CompiledFilter:
    matches, plan = _compile(node, 1, max_depth)
    return CompiledFilter(matches, plan, node)


def _compile(node: Any, depth: int, max_depth: int) -> tuple[Predicate, Plan]:
    if depth > max_depth:
        raise AdminLimitExceeded("search filter nested too deep")
    if isinstance(node, pureldap.LDAPFilter_and):
        return _and([_compile(c, depth + 1, max_depth) for c in node])
    if isinstance(node, pureldap.LDAPFilter_or):
        return _or([_compile(c, depth + 1, max_depth) for c in node])
    if isinstance(node, pureldap.LDAPFilter_not):
        inner, _ = _compile(node.value, depth + 1, max_depth)
        return (lambda e: None if (r := inner(e)) is None else not r), _no_plan
    if isinstance(node, pureldap.LDAPFilter_present):
        return _present(attribute_name(node.value))
    if isinstance(node, pureldap.LDAPFilter_equalityMatch):
        return _equality(attribute_name(_text(node.attributeDesc)), _text(node.assertionValue))
    if isinstance(node, pureldap.LDAPFilter_substrings):
        return _substrings(attribute_name(_text(node.type)), node.substrings), _no_plan
    if isinstance(node, pureldap.LDAPFilter_greaterOrEqual):
        name = attribute_name(_text(node.attributeDesc))
        return _ordering(name, _text(node.assertionValue), greater=True), _no_plan
    if isinstance(node, pureldap.LDAPFilter_lessOrEqual):
        name = attribute_name(_text(node.attributeDesc))
        return _ordering(name, _text(node.assertionValue), greater=False), _no_plan
    if isinstance(node, pureldap.LDAPFilter_approxMatch):
        name = attribute_name(_text(node.attributeDesc))
        return _approx(name, _text(node.assertionValue)), _no_plan
    if isinstance(node, pureldap.LDAPFilter_extensibleMatch):
        return _extensible(node)
    raise ProtocolError(f"unsupported filter {type(node).__name__}")


def _and(parts: list[tuple[Predicate, Plan]]) -> tuple[Predicate, Plan]:
    preds = tuple(p for p, _ in parts)
    plans = tuple(p for _, p in parts)

    def matches(entry: Entry) -> Tri:
        result: Tri = True
        for pred in preds:
            r = pred(entry)
            if r is False:
                return False
            if r is None:
                result = None
        return result

    def plan(values: Index) -> set[str] | None:
        best: set[str] | None = None
        for sub in plans:
            found = sub(values)
            if found is not None and (best is None or len(found) < len(best)):
                best = found
        return best

    return matches, plan


def _or(parts: list[tuple[Predicate, Plan]]) -> tuple[Predicate, Plan]:
    preds = tuple(p for p, _ in parts)
    plans = tuple(p for _, p in parts)

    def matches(entry: Entry) -> Tri:
        result: Tri = False
        for pred in preds:
            r = pred(entry)
            if r is True:
                return True
            if r is None:
                result = None
        return result

    def plan(values: Index) -> set[str] | None:
        union: set[str] = set()
        for sub in plans:
            found = sub(values)
            if found is None:
                return None
            union |= found
        return union

    return matches, plan


def _present(name: str) -> tuple[Predicate, Plan]:
    if name == "objectclass":
        # Every entry has an object class: (objectClass=*) is the "match all" filter.
        return (lambda e: True), _no_plan
    return (lambda e: e.has(name)), _no_plan


def _equality(name: str, assertion: str) -> tuple[Predicate, Plan]:
    norm = normalize(syntax_of(name), assertion)
    if norm is None:
        return (lambda e: None), _no_plan

    def matches(entry: Entry) -> Tri:
        attribute = entry.get(name)
        return attribute is not None and norm in attribute.norms

    def plan(values: Index) -> set[str] | None:
        bucket = values.get(name)
        if bucket is None:
            return None
        found = bucket.get(norm)
        if found is None:
            return set()
        return {found} if isinstance(found, str) else found

    return matches, plan


def _fold_piece(text: str) -> str:
    # Pieces keep their edge spaces (one), so "a *" still needs the space after "a".
    return re.sub(r"\s+", " ", text).casefold()


def _substrings(name: str, pieces: Iterable[Any]) -> Predicate:
    initial, final = None, None
    middle: list[str] = []
    for piece in pieces:
        text = _fold_piece(_text(piece.value))
        if isinstance(piece, pureldap.LDAPFilter_substrings_initial):
            initial = text
        elif isinstance(piece, pureldap.LDAPFilter_substrings_final):
            final = text
        else:
            middle.append(text)

    def one(value: Normalized | None) -> bool:
        if value is None:
            return False
        s = value if isinstance(value, str) else str(value)
        start, end = 0, len(s)
        if initial is not None:
            if not s.startswith(initial):
                return False
            start = len(initial)
        if final is not None:
            if not s.endswith(final) or len(s) - len(final) < start:
                return False
            end = len(s) - len(final)
        for part in middle:
            found = s.find(part, start, end)
            if found < 0:
                return False
            start = found + len(part)
        return True

    def matches(entry: Entry) -> Tri:
        attribute = entry.get(name)
        if attribute is None:
            return False
        return any(one(v) for v in attribute.norms)

    return matches


def _ordering(name: str, assertion: str, *, greater: bool) -> Predicate:
    syntax = syntax_of(name)
    if syntax is Syntax.DN:
        return lambda e: None  # distinguishedName has no ordering rule
    norm = normalize(syntax, assertion)
    if norm is None:
        return lambda e: None

    def matches(entry: Entry) -> Tri:
        attribute = entry.get(name)
        if attribute is None:
            return False
        for value in attribute.norms:
            if value is None or type(value) is not type(norm):
                continue
            if (value >= norm) if greater else (value <= norm):  # type: ignore[operator]
                return True
        return False

    return matches


def _approx_key(value: str) -> str:
    return "".join(c for c in normalize_value(value) if c.isalnum())


def _approx(name: str, assertion: str) -> Predicate:
    """Approximate match: equality ignoring case, spaces and punctuation."""
    key = _approx_key(assertion)

    def matches(entry: Entry) -> Tri:
        attribute = entry.get(name)
        if attribute is None:
            return False
        return any(_approx_key(v) == key for v in attribute.values)

    return matches


def _extensible(node: Any) -> tuple[Predicate, Plan]:
    rule = _text(node.matchingRule).strip().lower() if node.matchingRule else None
    name = attribute_name(_text(node.type)) if node.type else None
    assertion = _text(node.matchValue)
    dn_attributes = bool(node.dnAttributes and node.dnAttributes.value)

    compare = _rule(rule, name, assertion)
    if compare is None:
        return (lambda e: None), _no_plan

    def matches(entry: Entry) -> Tri:
        result: Tri = False
        if name is not None:
            attribute = entry.get(name)
            candidates = [(name, attribute)] if attribute is not None else []
        else:
            candidates = list(entry.attributes.items())
        for attr_name, attribute in candidates:
            for raw in attribute.values:
                r = compare(attr_name, raw)
                if r is True:
                    return True
                if r is None:
                    result = None
        if dn_attributes:
            for attr_name, raw in entry.rdn:
                if (name is None or attr_name == name) and compare(attr_name, raw) is True:
                    return True
        return result

    plan: Plan = _no_plan
    if name is not None and (rule is None or rule == IN_CHAIN or rule in DN_MATCH):
        # Same equality the index was built with, so the plan never misses a match.
        _, plan = _equality(name, assertion)
    return matches, plan


def _rule(rule: str | None, name: str | None,
          assertion: str) -> Callable[[str, str], Tri] | None:
    """A comparison ``(attribute name, raw value) -> Tri`` for ``rule``; None if unknown."""
    if rule is None:
        if name is None:
            return None  # RFC 4511: a type or a rule is required

        def by_syntax(attr: str, raw: str) -> Tri:
            syntax = syntax_of(attr)
            norm = normalize(syntax, assertion)
            return None if norm is None else normalize(syntax, raw) == norm

        return by_syntax
    if rule in CASE_IGNORE:
        folded = normalize_value(assertion)
        return lambda attr, raw: normalize_value(raw) == folded
    if rule in CASE_EXACT:
        exact = " ".join(assertion.split())
        return lambda attr, raw: " ".join(raw.split()) == exact
    if rule in DN_MATCH or rule == IN_CHAIN:
        wanted = normalize(Syntax.DN, assertion)
        if wanted is None:
            return None
        return lambda attr, raw: normalize(Syntax.DN, raw) == wanted
    if rule in INTEGER_MATCH or rule in (BIT_AND, BIT_OR):
        number = normalize(Syntax.INTEGER, assertion)
        if not isinstance(number, int):
            return None

        def integer(attr: str, raw: str) -> Tri:
            value = normalize(Syntax.INTEGER, raw)
            if not isinstance(value, int):
                return None
            if rule == BIT_AND:
                return value & number == number
            if rule == BIT_OR:
                return value & number != 0
            return value == number

        return integer
    return None
