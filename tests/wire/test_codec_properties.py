"""Property tests of the Python codec (wire.py, event.py) with hypothesis.

The vectors pin exact bytes for chosen cases; these tests check the promises
that must hold for *every* input:

- a peer can send any bytes: decoding and validating raise only ``WireError``
  (which the broker turns into an ERR or a per-event rejection), never another
  exception that would escape the ingest loop;
- encode then decode is the identity on valid events, up to the one documented
  normalisation (integral floats below 2**53 become integers);
- the canonical bytes do not depend on the order a dict was built in;
- ``validate_event`` is idempotent and returns the event in canonical key
  order, so ``pack_ordered`` of its result equals ``pack`` of the input;
- every event the codec accepts also satisfies proto/event.schema.json.

Runs derandomized by default so that ``make test`` is deterministic; set
``SECBUS_HYPOTHESIS_EXPLORE=1`` (optionally with ``SECBUS_HYPOTHESIS_EXAMPLES``)
for a random, longer search.
"""

from __future__ import annotations

import json
import os
import pathlib

import jsonschema
import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secbus_sdk import wire
from secbus_sdk.event import (
    ACTOR_FIELDS,
    OUTCOMES,
    SEVERITIES,
    validate_event,
)

EXPLORE = os.environ.get("SECBUS_HYPOTHESIS_EXPLORE") == "1"
EXAMPLES = int(os.environ.get("SECBUS_HYPOTHESIS_EXAMPLES", "2000" if EXPLORE else "150"))

PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not EXPLORE,
    database=None if not EXPLORE else settings.default.database,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SCHEMA = json.loads((pathlib.Path(__file__).resolve().parents[2] / "proto" / "event.schema.json").read_text(encoding="utf-8"))
SCHEMA_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

# --------------------------------------------------------------------------
# strategies: values a valid event may hold

# Any Unicode text msgpack can carry (surrogates cannot be encoded as UTF-8).
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=24)
NONEMPTY_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=24)

INT_EDGES = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**53 - 1, 2**53, 2**63 - 1, 2**64 - 1,
             -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**53), -(2**63)]
INTS = st.one_of(st.sampled_from(INT_EDGES), st.integers(min_value=-(2**63), max_value=2**64 - 1))
INTEGRAL_FLOATS = st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1).map(float)
FLOATS = st.one_of(st.floats(allow_nan=False, allow_infinity=False), INTEGRAL_FLOATS)
SCALARS = st.one_of(TEXT, INTS, FLOATS, st.booleans(), st.none())
LISTS = st.lists(SCALARS, max_size=6)
ATTR_VALUES = st.one_of(SCALARS, LISTS)
_LOWER = "abcdefghijklmnopqrstuvwxyz"
_KEY_START = _LOWER + _LOWER.upper() + "_"
ATTR_KEYS = st.builds(str.__add__, st.sampled_from(_KEY_START), st.text(alphabet=_KEY_START + "0123456789.:-", max_size=12))
FIELD_NAMES = st.builds(str.__add__, st.sampled_from(_LOWER), st.text(alphabet=_LOWER + "0123456789_", max_size=12))

SEGMENT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=10)
TYPES = st.lists(SEGMENT, min_size=2, max_size=5).map(".".join)


def _uuid7(ms: int, rand_a: int, rand_b: int) -> str:
    value = ms << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


IDS = st.builds(_uuid7, st.integers(0, 2**48 - 1), st.integers(0, 2**12 - 1), st.integers(0, 2**62 - 1))
TRACE_IDS = st.integers(1, 2**128 - 1).map(lambda n: f"{n:032x}")
SPAN_IDS = st.integers(1, 2**64 - 1).map(lambda n: f"{n:016x}")
UINT63 = st.one_of(st.sampled_from([0, 2**53, 2**63 - 1]), st.integers(0, 2**63 - 1))

SOURCES = st.fixed_dictionaries(
    {"platform": NONEMPTY_TEXT, "sdk": NONEMPTY_TEXT, "service": NONEMPTY_TEXT},
    optional={"host": TEXT, "pid": st.integers(0, 2**32 - 1)},
)
ACTORS = st.fixed_dictionaries({}, optional={name: TEXT for name in ACTOR_FIELDS})

RESERVED = {"v", "id", "ts", "type", "outcome", "trace_id", "span_id", "source", "severity", "actor",
            "resource", "reason", "duration_us", "attrs", "seq", "received_ns", "publisher", "tenant"}


@st.composite
def valid_events(draw) -> dict:
    event = draw(st.fixed_dictionaries(
        {"v": st.just(1), "id": IDS, "ts": UINT63, "type": TYPES, "outcome": st.sampled_from(OUTCOMES),
         "trace_id": TRACE_IDS, "span_id": SPAN_IDS, "source": SOURCES},
        optional={"severity": st.sampled_from(SEVERITIES), "actor": ACTORS, "resource": TEXT, "reason": TEXT,
                  "duration_us": UINT63, "attrs": st.dictionaries(ATTR_KEYS, st.one_of(ATTR_VALUES, LISTS), max_size=6),
                  "seq": UINT63, "received_ns": UINT63, "publisher": TEXT, "tenant": TEXT},
    ))
    # An unknown optional field from a newer minor version, sometimes.
    extra = draw(st.dictionaries(FIELD_NAMES.filter(lambda n: n not in RESERVED), ATTR_VALUES, max_size=2))
    event.update(extra)
    return event


@st.composite
def shuffled(draw, value):
    """``value`` with every dict rebuilt in a drawn insertion order."""
    if type(value) is dict:
        items = draw(st.permutations(list(value.items())))
        return {k: draw(shuffled(v)) for k, v in items}
    if type(value) is list:
        return [draw(shuffled(v)) for v in value]
    return value


def typed(value):
    """A comparable form that tells 2 from 2.0 and True from 1 (plain == does not)."""
    if type(value) is dict:
        return ("map", [(k, typed(v)) for k, v in value.items()])
    if type(value) is list:
        return ("list", [typed(v) for v in value])
    return (type(value).__name__, value)


def normalised(value):
    """What the canonical encoding promises to give back: integral floats below 2**53 as ints."""
    if type(value) is dict:
        return {k: normalised(value[k]) for k in sorted(value)}
    if type(value) is list:
        return [normalised(v) for v in value]
    if type(value) is float and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


# --------------------------------------------------------------------------
# strategies: anything a hostile or buggy peer may send

# Every msgpack type, including those the protocol forbids (bin, ext, bytes map keys, nesting).
RAW_SCALARS = st.one_of(
    TEXT, st.binary(max_size=8), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(), st.booleans(), st.none(),
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=4)),
)
RAW_VALUES = st.recursive(
    RAW_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(TEXT, st.binary(max_size=4)), inner, max_size=4),
    ),
    max_leaves=12,
)
KNOWN_FIELDS = sorted(RESERVED)


@st.composite
def hostile_events(draw) -> dict:
    """A valid event with one to three fields (top-level or inside a nested map) replaced,
    added or removed: close enough to valid to reach every check in validate_event."""
    event = draw(valid_events())
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["top", "source", "actor", "attrs", "drop"]))
        if where == "drop":
            event.pop(draw(st.sampled_from(KNOWN_FIELDS)), None)
        elif where == "top":
            key = draw(st.one_of(st.sampled_from(KNOWN_FIELDS), TEXT, st.binary(max_size=4)))
            event[key] = draw(RAW_VALUES)
        else:
            inner = event.get(where)
            if type(inner) is not dict:
                inner = event[where] = {}
            inner[draw(st.one_of(TEXT, st.binary(max_size=4), st.sampled_from(["pid", "user", "platform"])))] = draw(RAW_VALUES)
    return event


def pack_raw(value) -> bytes:
    """msgpack bytes of ``value`` as a careless or hostile encoder would write them."""
    return msgpack.packb(value, use_bin_type=True, strict_types=False)


def decode_and_validate(data: bytes) -> None:
    """What the broker does with one event's bytes; WireError is the only allowed failure."""
    try:
        validate_event(wire.unpack(data))
    except wire.WireError as err:
        assert err.code in {wire.MALFORMED, wire.TOO_LARGE, wire.INVALID, wire.UNSUPPORTED_VERSION}, err.code
        assert str(err), "a WireError must carry a message"


# --------------------------------------------------------------------------
# robustness: bad input raises WireError and nothing else


@PROPERTY
@given(st.binary(max_size=512))
def test_arbitrary_bytes_as_a_body_raise_only_wire_error(data):
    try:
        wire.decode_frames([wire.MAGIC, wire.PUB, data])
    except wire.WireError:
        pass
    decode_and_validate(data)


@PROPERTY
@given(st.lists(st.binary(max_size=16), max_size=5))
def test_arbitrary_frames_raise_only_wire_error(frames):
    try:
        command, body = wire.decode_frames(frames)
    except wire.WireError:
        return
    assert command in wire.COMMANDS and type(body) is dict


@PROPERTY
@given(RAW_VALUES)
def test_any_msgpack_value_as_an_event_raises_only_wire_error(value):
    decode_and_validate(pack_raw(value))


@PROPERTY
@given(hostile_events())
def test_a_damaged_event_raises_only_wire_error(event):
    decode_and_validate(pack_raw(event))


@PROPERTY
@given(valid_events(), st.data())
def test_corrupted_bytes_of_a_valid_event_raise_only_wire_error(event, data):
    encoded = bytearray(wire.pack(event))
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
        at = data.draw(st.integers(0, len(encoded) - 1)) if encoded else 0
        if action == "flip" and encoded:
            encoded[at] = data.draw(st.integers(0, 255))
        elif action == "truncate":
            del encoded[at:]
        else:
            encoded[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    decode_and_validate(bytes(encoded))


@PROPERTY
@given(RAW_VALUES, st.integers(0, 2**64 - 1))
def test_any_pub_body_is_accepted_or_refused_with_wire_error(events, seq):
    body = pack_raw({"seq": seq, "events": events})
    try:
        _, decoded = wire.decode_frames([wire.MAGIC, wire.PUB, body])
        _, items = wire.check_pub(decoded, len(body))
    except wire.WireError:
        return
    for item in items:
        try:
            validate_event(item)
        except wire.WireError:
            pass


# --------------------------------------------------------------------------
# round trip, canonical order, idempotence


@PROPERTY
@given(valid_events())
def test_encode_then_decode_is_the_identity_on_valid_events(event):
    decoded = wire.unpack(wire.pack(event))
    assert typed(normalised(decoded)) == typed(normalised(event))
    # The decoded value is already normal: no float with an integral value survives.
    assert typed(decoded) == typed(normalised(decoded))
    assert typed(validate_event(decoded)) == typed(normalised(event))


@PROPERTY
@given(valid_events(), st.data())
def test_canonical_bytes_do_not_depend_on_dict_insertion_order(event, data):
    other = data.draw(shuffled(event))
    assert wire.pack(other) == wire.pack(event)
    assert wire.pack_ordered(validate_event(other)) == wire.pack(event)


@PROPERTY
@given(valid_events())
def test_validate_event_is_idempotent_and_returns_canonical_order(event):
    once = validate_event(event)
    twice = validate_event(once)
    assert typed(twice) == typed(once)
    assert typed(once) == typed(normalised(event))
    assert wire.pack_ordered(once) == wire.pack(event)


@PROPERTY
@given(valid_events())
def test_every_event_the_codec_accepts_satisfies_the_json_schema(event):
    errors = [e.message for e in SCHEMA_VALIDATOR.iter_errors(validate_event(event))]
    assert not errors


def test_the_strategies_reach_the_interesting_cases():
    """Guard against a strategy that silently stops producing what the properties need."""
    seen = set()

    @settings(max_examples=200, deadline=None, derandomize=True, database=None)
    @given(valid_events())
    def collect(event):
        attrs = event.get("attrs", {})
        if any(type(v) is float and v.is_integer() for v in attrs.values()):
            seen.add("integral float")
        if any(type(v) is list and v for v in attrs.values()):
            seen.add("list")
        if any(type(v) is str and any(ord(c) > 127 for c in v) for v in attrs.values()):
            seen.add("non-ascii")
        if any(type(v) is int and abs(v) >= 2**32 for v in attrs.values()):
            seen.add("wide int")
        if set(event) - RESERVED:
            seen.add("unknown field")

    collect()
    assert seen == {"integral float", "list", "non-ascii", "wide int", "unknown field"}


@pytest.mark.parametrize("value, expected", [
    ({"outcome": [1]}, "outcome"),
    ({"severity": {}}, "severity"),
    ({"attrs": {"a": 1, b"b": 2}}, "attrs"),
    ({"source": {"platform": "p", "sdk": "s", "service": "x", b"k": 1}}, "source"),
    ({"actor": {"user": "u", b"k": 1}}, "actor"),
    ({b"zz": 1}, "event"),
])
def test_unhashable_values_and_bytes_keys_are_rejected_as_invalid(value, expected):
    """Regressions found by the properties above: each once raised TypeError, not WireError."""
    event = {"v": 1, "id": "0193a3c4-5e6f-7a1b-8c2d-3e4f5a6b7c8d", "ts": 1, "type": "authn.login", "outcome": "success",
             "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
             "source": {"platform": "python", "sdk": "secbus-sdk/0.1.0", "service": "web"}}
    event.update(value)
    with pytest.raises(wire.WireError) as caught:
        validate_event(wire.unpack(pack_raw(event)))
    assert caught.value.code == wire.INVALID
    assert caught.value.field == expected
