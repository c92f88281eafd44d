"""Hypothesis against the request decoder and the filter evaluator.

The decoder must answer every byte string with a request or a ``MalformedRequest`` (never
another exception, never unbounded work); the evaluator must agree with an independent
reference evaluator, keep RFC 4511's three-valued NOT, survive a trip over the wire, and
its index plan must never miss an entry the filter accepts.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ldaptor.protocols import pureber, pureldap

from ldap.codec import RequestDecoder, SimpleBind, decode_frame
from ldap.entry import Entry
from ldap.errors import MalformedRequest
from ldap.filters import compile_filter
from ldap.index import INDEXED
from tests.ldap.raw import DECODER

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- the decoder -----------------------------------------------------------------------------


def drain(decoder: RequestDecoder) -> list[Any]:
    out = []
    for _ in range(1000):
        request = decoder.next_request()
        if request is None:
            break
        out.append(request)
    return out


@FUZZ
@given(st.binary(max_size=600))
def test_decoder_answers_any_bytes(data: bytes) -> None:
    decoder = RequestDecoder(max_pdu_bytes=4096, max_filter_depth=16)
    try:
        decoder.feed(data)
        drain(decoder)
    except MalformedRequest:
        pass


attribute_names = st.sampled_from(
    ["cn", "uid", "mail", "username", "displayname", "memberof", "objectClass", "sn",
     "gidnumber", "x-unknown"]
)
values = st.text(alphabet="abcAB c@.=,-0123", max_size=8)


def leaf_filters() -> st.SearchStrategy[Any]:
    def substrings(name: str, initial: str | None, middle: list[str],
                   final: str | None) -> Any:
        pieces: list[Any] = []
        if initial:
            pieces.append(pureldap.LDAPFilter_substrings_initial(initial))
        pieces.extend(pureldap.LDAPFilter_substrings_any(m) for m in middle if m)
        if final:
            pieces.append(pureldap.LDAPFilter_substrings_final(final))
        if not pieces:
            pieces.append(pureldap.LDAPFilter_substrings_any("a"))
        return pureldap.LDAPFilter_substrings(type=name, substrings=pieces)

    def ava(cls: Any) -> Any:
        return st.builds(
            lambda n, v: cls(attributeDesc=pureldap.LDAPAttributeDescription(n),
                             assertionValue=pureldap.LDAPAssertionValue(v)),
            attribute_names, values,
        )

    return st.one_of(
        st.builds(pureldap.LDAPFilter_present, attribute_names),
        ava(pureldap.LDAPFilter_equalityMatch),
        ava(pureldap.LDAPFilter_greaterOrEqual),
        ava(pureldap.LDAPFilter_lessOrEqual),
        ava(pureldap.LDAPFilter_approxMatch),
        st.builds(substrings, attribute_names, st.none() | values, st.lists(values, max_size=2),
                  st.none() | values),
        st.builds(
            lambda rule, name, value: pureldap.LDAPFilter_extensibleMatch(
                matchingRule=rule, type=name, matchValue=value),
            st.sampled_from([None, "2.5.13.2", "2.5.13.5", "1.2.840.113556.1.4.1941",
                             "2.5.13.14", "9.9.9"]),
            attribute_names, values,
        ).filter(lambda f: f.matchingRule is not None or f.type is not None),
    )


filters = st.recursive(
    leaf_filters(),
    lambda inner: st.one_of(
        st.builds(lambda xs: pureldap.LDAPFilter_and(xs), st.lists(inner, min_size=1,
                                                                   max_size=3)),
        st.builds(lambda xs: pureldap.LDAPFilter_or(xs), st.lists(inner, min_size=1,
                                                                  max_size=3)),
        st.builds(pureldap.LDAPFilter_not, inner),
    ),
    max_leaves=8,
)


@FUZZ
@given(filters, st.integers(1, 2**31 - 1), st.data())
def test_decoder_round_trips_and_survives_mutation(flt: Any, message_id: int,
                                                   data: st.DataObject) -> None:
    request = pureldap.LDAPSearchRequest(baseObject="ou=users,dc=cloudron", filter=flt,
                                         attributes=["cn", "*"])
    wire = bytes(pureldap.LDAPMessage(request, id=message_id).toWire())
    decoded = decode_frame(wire, max_depth=64)
    assert decoded.message_id == message_id
    assert decoded.body.filter.toWire() == flt.toWire()
    position = data.draw(st.integers(0, len(wire) - 1))
    flipped = wire[:position] + bytes((data.draw(st.integers(0, 255)),)) + wire[position + 1:]
    decoder = RequestDecoder(max_pdu_bytes=len(wire) + 64, max_filter_depth=64)
    try:
        decoder.feed(flipped)
        drain(decoder)
    except MalformedRequest:
        pass


# -- the evaluator ---------------------------------------------------------------------------

entry_values = st.lists(st.text(alphabet="abcAB c@.0123-", min_size=1, max_size=8),
                        min_size=1, max_size=3)


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    attributes = []
    for name in ("cn", "uid", "mail", "username", "displayname", "sn"):
        if draw(st.booleans()):
            attributes.append((name, draw(entry_values)))
    attributes.append(("objectClass", ["user", "person"]))
    if draw(st.booleans()):
        attributes.append(("gidnumber", [str(draw(st.integers(0, 1000)))]))
    if draw(st.booleans()):
        attributes.append(("memberof", [draw(st.sampled_from([
            "cn=users,ou=groups,dc=cloudron", "CN=Admins, ou=groups,dc=cloudron"]))]))
    key = f"cn={draw(st.uuids())},ou=users,dc=cloudron"
    return Entry(key, key, attributes, rdn=(("cn", key[3:39]),))


def fold(value: str) -> str:
    return " ".join(value.split()).casefold()


def reference(flt: Any, entry: Entry) -> bool | None:
    """An independent evaluator for the filter kinds whose semantics are simple to restate
    (None where the reference has no opinion, so the comparison skips them)."""
    def values_of(desc: Any) -> list[str] | None:
        name = (desc.value if hasattr(desc, "value") else desc)
        name = name.decode() if isinstance(name, bytes) else name
        attribute = entry.get(name.lower())
        return None if attribute is None else list(attribute.values)

    if isinstance(flt, pureldap.LDAPFilter_and):
        results = [reference(f, entry) for f in flt]
        return None if None in results else all(results)
    if isinstance(flt, pureldap.LDAPFilter_or):
        results = [reference(f, entry) for f in flt]
        return None if None in results else any(results)
    if isinstance(flt, pureldap.LDAPFilter_not):
        inner = reference(flt.value, entry)
        return None if inner is None else not inner
    if isinstance(flt, pureldap.LDAPFilter_present):
        name = flt.value.decode() if isinstance(flt.value, bytes) else flt.value
        return name.lower() == "objectclass" or values_of(name) is not None
    if isinstance(flt, pureldap.LDAPFilter_equalityMatch):
        name = flt.attributeDesc.value
        name = name.decode() if isinstance(name, bytes) else name
        if name.lower() in ("memberof", "gidnumber"):
            return None  # DN and integer syntaxes: covered by the socket tests
        found = values_of(flt.attributeDesc)
        wanted = flt.assertionValue.value
        wanted = wanted.decode() if isinstance(wanted, bytes) else wanted
        return found is not None and fold(wanted) in {fold(v) for v in found}
    if isinstance(flt, pureldap.LDAPFilter_substrings):
        name = text(flt.type)
        if name.lower() in ("memberof", "gidnumber"):
            return None
        found = values_of(name)
        # Restated as a regular expression: the pieces in order, not overlapping, each
        # folded like the value (case, runs of spaces) but keeping its edge spaces.
        pattern, tail = "", ".*"
        for piece in flt.substrings:
            folded = re.escape(re.sub(r"\s+", " ", text(piece.value)).casefold())
            if isinstance(piece, pureldap.LDAPFilter_substrings_initial):
                pattern = folded + pattern
            elif isinstance(piece, pureldap.LDAPFilter_substrings_final):
                tail = ".*" + folded
            else:
                pattern += ".*" + folded
        regex = re.compile(pattern + tail, re.DOTALL)
        return found is not None and any(regex.fullmatch(fold(v)) for v in found)
    if isinstance(flt, pureldap.LDAPFilter_greaterOrEqual | pureldap.LDAPFilter_lessOrEqual):
        name = text(flt.attributeDesc.value)
        if name.lower() in ("memberof", "gidnumber"):
            return None  # DN has no ordering; integers are covered by the socket tests
        found = values_of(name)
        wanted = fold(text(flt.assertionValue.value))
        greater = isinstance(flt, pureldap.LDAPFilter_greaterOrEqual)
        return found is not None and any(
            (fold(v) >= wanted) if greater else (fold(v) <= wanted) for v in found
        )
    return None


def text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


@FUZZ
@given(filters, st.lists(entries(), min_size=1, max_size=6))
def test_evaluator_agrees_with_reference_and_plan_is_sound(flt: Any,
                                                           population: list[Entry]) -> None:
    compiled = compile_filter(flt, max_depth=64)
    negated = compile_filter(pureldap.LDAPFilter_not(flt), max_depth=64)
    over_the_wire = compile_filter(
        decode_frame(bytes(pureldap.LDAPMessage(
            pureldap.LDAPSearchRequest(baseObject="", filter=flt), id=1).toWire()), 64).body.filter,
        max_depth=64,
    )
    index: dict[str, dict[Any, set[str]]] = {name: {} for name in INDEXED}
    for entry in population:
        for name in INDEXED:
            attribute = entry.get(name)
            if attribute is not None:
                for norm in attribute.norms:
                    if norm is not None:
                        index[name].setdefault(norm, set()).add(entry.key)
    plan = compiled.plan(index)
    for entry in population:
        result = compiled.matches(entry)
        assert result in (True, False, None)
        inverse = negated.matches(entry)
        assert inverse == (None if result is None else not result)
        assert over_the_wire.matches(entry) == result
        expected = reference(flt, entry)
        if expected is not None and result is not None:
            assert result == expected, (flt.asText(), entry.attributes)
        if result is True and plan is not None:
            assert entry.key in plan, flt.asText()


@FUZZ
@given(st.integers(0, 200), st.binary(max_size=40), st.binary(max_size=40),
       st.integers(1, 2**31 - 1))
def test_fast_bind_path_reads_what_ldaptor_reads(version: int, dn: bytes, password: bytes,
                                                 message_id: int) -> None:
    wire = bytes(pureldap.LDAPMessage(
        pureldap.LDAPBindRequest(version=version, dn=dn, auth=password), id=message_id
    ).toWire())
    fast = decode_frame(wire, 16)
    assert isinstance(fast.body, SimpleBind)
    slow, _ = pureber.berDecodeObject(DECODER, wire)
    assert (fast.message_id, fast.body.version, fast.body.dn, fast.body.auth) == (
        slow.id, slow.value.version, slow.value.dn, slow.value.auth)
    unbind = decode_frame(bytes(pureldap.LDAPMessage(pureldap.LDAPUnbindRequest(),
                                                     id=message_id).toWire()), 16)
    assert isinstance(unbind.body, pureldap.LDAPUnbindRequest)


@FUZZ
@given(filters, st.text(max_size=30), st.integers(0, 3), st.integers(0, 3),
       st.integers(-2**31, 2**31 - 1), st.integers(-2**31, 2**31 - 1), st.booleans(),
       st.lists(attribute_names, max_size=4), st.integers(1, 2**31 - 1))
def test_fast_search_path_reads_what_ldaptor_reads(
    flt: Any, base: str, scope: int, deref: int, size: int, time_limit: int, types_only: bool,
    attributes: list[str], message_id: int,
) -> None:
    wire = bytes(pureldap.LDAPMessage(pureldap.LDAPSearchRequest(
        baseObject=base, scope=scope, derefAliases=deref, sizeLimit=size, timeLimit=time_limit,
        typesOnly=types_only, filter=flt, attributes=attributes,
    ), id=message_id).toWire())
    fast = decode_frame(wire, 64)
    slow, _ = pureber.berDecodeObject(DECODER, wire)
    assert fast.message_id == slow.id
    # Same classes, same fields, same bytes back: repr shows every field of every node.
    assert repr(fast.body) == repr(slow.value)
    assert fast.body.toWire() == slow.value.toWire()


def test_unknown_tag_does_not_print(capsys: Any) -> None:
    frame = b"\x30\x0c\x02\x01\x01\x63\x07\x04\x00\x0a\x01\x00\xbf\x00"
    with contextlib.suppress(MalformedRequest):
        decode_frame(frame, 16)
    assert capsys.readouterr().out == ""
    assert pureber.BERDecoderContext  # ldaptor's decoder is the one in use
