"""The audit chain's canonical serialisation is byte-identical to the documented one.

docs/audit.md defines it as ``json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False, allow_nan=False)`` encoded as UTF-8; ``chain.canonical``
writes most records with a faster encoder and must never differ from that by
one byte (a verifier in another language follows the document), nor accept
what the documented form refuses.
"""

from __future__ import annotations

import json
import math
import random
import sys

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secbus.handlers.audit import chain
from tests.support import vectors

from .events import make_event


def documented(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


PLAIN_SCALARS = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.integers()
                 | st.text(max_size=40))
KEYS = st.text(max_size=12)


def values(scalars):
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(KEYS, inner, max_size=6),
                        max_leaves=30)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(KEYS, values(PLAIN_SCALARS), max_size=12))
def test_random_values_without_floats_take_the_fast_encoder_and_serialise_to_the_documented_bytes(value):
    assert chain._plain(value.values())
    assert chain.canonical(value) == documented(value)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(KEYS, values(PLAIN_SCALARS | st.floats(allow_nan=False, allow_infinity=False)), max_size=12))
def test_random_values_with_floats_serialise_to_the_documented_bytes(value):
    assert chain.canonical(value) == documented(value)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(KEYS, values(st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=40)
                                   | st.floats(allow_nan=False, allow_infinity=False) | st.binary(max_size=4)),
                       max_size=12))
def test_msgpack_bytes_called_plain_decode_to_plain_values_only(value):
    """plain_msgpack's "yes" must be certain: it lets the writer skip the type walk."""
    data = msgpack.packb(value, use_bin_type=True)
    if chain.plain_msgpack(data):
        decoded = msgpack.unpackb(data, raw=False, strict_map_key=False)
        assert chain._plain(decoded.values())
        assert chain.canonical(decoded, known_plain=True) == documented(decoded)


def test_floats_bins_and_exts_in_msgpack_are_never_called_plain():
    for value in ({"a": 0.5}, {"a": [1, {"b": 1e300}]}, {"a": b"x"}, {"a": msgpack.ExtType(1, b"x")}):
        assert not chain.plain_msgpack(msgpack.packb(value, use_bin_type=True, use_single_float=False))
    assert chain.plain_msgpack(msgpack.packb({"a": [1, "x", None, True, {"b": -5}]}))


@pytest.mark.parametrize("path", vectors.PATHS, ids=lambda p: p.stem)
def test_every_shared_vector_as_an_audit_record_serialises_to_the_documented_bytes(path):
    event = msgpack.unpackb(bytes.fromhex(vectors.load(path)["msgpack"]), raw=False, strict_map_key=False)
    if not isinstance(event, dict):
        pytest.skip("not a map")
    record = {"kind": "event", "seq": 3, "event": event, "events": 2, "n": 5, "prev": "ab" * 32}
    try:
        expected = documented(record)
    except (TypeError, ValueError) as exc:  # refused by the documented form: refused by the fast one too
        with pytest.raises(type(exc)):
            chain.canonical(record)
        return
    assert chain.canonical(record) == expected


def test_every_character_and_control_code_is_written_as_documented():
    every = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    value = {"s": every, every[:300]: 1, "\u2028": "\x7f\x00\x1f\"\\/"}
    assert chain.canonical(value) == documented(value)


def test_floats_of_every_magnitude_are_written_as_python_writes_them():
    rng = random.Random(7)
    floats = [1e-05, 1e16, 1e+22, 5e-324, 1.7976931348623157e308, -0.0, 0.1, 123456789012345680.0]
    floats += [rng.random() * 10.0 ** rng.randint(-40, 40) * rng.choice((1, -1)) for _ in range(3000)]
    event = make_event(attrs={"ratio": floats[0], "small": 1e-05})
    event["unknown_field"] = floats
    record = {"kind": "event", "seq": 1, "event": event, "n": 1, "prev": chain.GENESIS}
    assert chain.canonical(record) == documented(record)
    assert all(chain.canonical({"f": f}) == documented({"f": f}) for f in floats)


def test_big_integers_are_written_in_full():
    for n in (2**63, -(2**63), 2**64 - 1, 2**64, -(2**64) - 1, 10**40):
        assert chain.canonical({"n": n, "l": [n]}) == documented({"n": n, "l": [n]})


@pytest.mark.parametrize("value", [{"f": math.nan}, {"f": [math.inf]}, {"b": b"x"}, {1: "a", "b": 2},
                                   {"s": {"x"}}, {"s": "\ud800"}],
                         ids=["nan", "inf", "bytes", "mixed keys", "set", "lone surrogate"])
def test_what_the_documented_form_refuses_is_refused(value):
    with pytest.raises(Exception) as documented_error:
        documented(value)
    with pytest.raises(documented_error.type):
        chain.canonical(value)


def test_a_circular_value_is_refused_as_the_documented_form_refuses_it():
    value: dict = {"a": [1]}
    value["a"].append(value)
    with pytest.raises(ValueError, match="Circular reference"):
        chain.canonical(value)


def test_non_string_keys_are_written_as_the_documented_form_writes_them():
    value = {"m": {2: "a", 10: "b"}, "t": (1, "x"), "z": True}
    assert chain.canonical(value) == documented(value)


def generic_line(event, seq, events, redacted, n, prev) -> tuple[bytes, str]:
    record = {"kind": "event", "seq": seq, "event": event, "events": events}
    if redacted:
        record["redacted"] = redacted
    line = chain.seal_line(record, n, prev)
    return line, record["hash"]


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(KEYS, values(PLAIN_SCALARS | st.floats(allow_nan=False, allow_infinity=False)), max_size=8),
       st.integers(-1, 2**64), st.integers(0, 2**40), st.lists(st.text(max_size=8), max_size=3), st.integers(1, 2**40))
def test_the_event_record_fast_line_is_the_generic_line(event, seq, events, redacted, n):
    prev = "ab" * 32
    assert chain.seal_event_line(event, seq, events, redacted, n, prev) == generic_line(event, seq, events, redacted, n, prev)


@pytest.mark.parametrize("seq, prev", [(True, "ab" * 32), (5.0, "ab" * 32), (5, 'x"y'), (5, "\u00e9" * 4), (5, "")])
def test_the_event_record_fast_line_falls_back_on_unexpected_values(seq, prev):
    event = make_event(attrs={"ratio": 0.5, "name": "\u00e9\n"})
    assert chain.seal_event_line(event, seq, 1, ["attrs.x"], 2, prev) == generic_line(event, seq, 1, ["attrs.x"], 2, prev)
