"""The msgspec fast path (bus/ingest/fastcheck.py) never changes what ingest accepts or stores.

Its one promise: when it says "certainly valid", ``validate_event`` accepts the
event and returns the very same dict (same keys, same order, same types); when
it is not sure, ingest runs ``validate_event`` exactly as before, so every
error keeps its code and message.  Checked on every protocol vector, on
generated valid, hostile and near-miss events under several limits, on whole
PUB bodies against ``requests.split_pub``, and on a real broker.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import sqlite3

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from secbus.ingest import fastcheck, requests
from secbus_sdk import wire
from secbus_sdk.event import validate_event
from support.broker import RawClient, start_broker, wait_until
from support.events import make_event, make_events
from support import vectors

ROOT = pathlib.Path(__file__).resolve().parents[2]
VECTORS = vectors.PATHS


def _load_properties():
    """The codec property tests' strategies (tests/wire has no package to import from)."""
    spec = importlib.util.spec_from_file_location("_secbus_codec_properties", ROOT / "tests" / "wire" / "test_codec_properties.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


props = _load_properties()
PROPERTY = props.PROPERTY


def typed(value):
    """Comparable form that tells 2 from 2.0, True from 1, and keeps key order."""
    return props.typed(value)


def slow(data: bytes, limits: wire.Limits) -> dict | wire.WireError:
    """What ingest did before the fast path: decode, then validate_event."""
    try:
        return validate_event(wire.unpack(data, limits), limits)
    except wire.WireError as exc:
        return exc


def assert_fast_agrees(data: bytes, limits: wire.Limits = wire.DEFAULT_LIMITS) -> dict | None:
    """The fast answer for ``data``; if it accepts, validate_event must accept the same dict."""
    fast = fastcheck.fast_validate(data, limits)
    if fast is not None:
        expected = slow(data, limits)
        assert not isinstance(expected, wire.WireError), f"fast path accepted an event validate_event rejects: {expected}"
        assert typed(fast) == typed(expected)
    return fast


# --------------------------------------------------------------------------
# (a) the protocol vectors

# Valid vectors outside the fast schema, on purpose (see fastcheck's docstring).
NOT_SURE_BY_DESIGN = {
    "002-full": "a float attr",
    "006-attrs-list-mixed": "a float in a list",
    "010-float-integral": "an integral float (validate_event turns it into an int)",
    "014-string-limit": "a string at the byte limit (over max_string_bytes // 4 characters)",
    "016-unknown-field": "an unknown field",
    "017-broker-stamped": "the broker's own fields (ingest strips them and re-encodes)",
}


def _vector(path):
    case = json.loads(path.read_text(encoding="utf-8"))
    return case, bytes.fromhex(case["msgpack"]), wire.DEFAULT_LIMITS.with_overrides(case.get("limits", {}))


@pytest.mark.parametrize("path", [p for p in VECTORS if _vector(p)[0]["kind"] == "event"], ids=lambda p: p.stem)
def test_fast_path_rejects_no_invalid_vector_and_accepts_the_plain_valid_ones(path):
    case, data, limits = _vector(path)
    fast = assert_fast_agrees(data, limits)
    if not case["valid"]:
        assert fast is None, "an invalid vector must go to validate_event for its precise error"
    elif path.stem in NOT_SURE_BY_DESIGN:
        assert fast is None, NOT_SURE_BY_DESIGN[path.stem]
    else:
        assert fast is not None, "a plain valid event should take the fast path"
        assert msgpack.packb(fast, use_bin_type=True) == data  # canonical order kept


@pytest.mark.parametrize("path", [p for p in VECTORS if _vector(p)[0]["kind"] == "pub"], ids=lambda p: p.stem)
def test_fast_split_of_pub_vectors_matches_the_existing_split(path):
    _, data, limits = _vector(path)
    assert_pub_split_agrees(data, limits)


# --------------------------------------------------------------------------
# (b) properties: fast accept implies validate_event accepts, with the same result


def assert_pub_split_agrees(body: bytes, limits: wire.Limits) -> None:
    """fastcheck.split_pub either steps aside (None) or gives the same spans and
    seq as requests.split_pub, and each event it is sure of validates to the same dict."""
    frames = [wire.MAGIC, wire.PUB, body]
    fast = fastcheck.split_pub(frames, limits)
    if fast is None:
        return
    old = requests.split_pub(frames, limits)
    assert old is not None, "the fast split took a body the existing split refuses"
    (fbody, fspans, sure), (obody, ospans) = fast, old
    assert set(fbody) == set(obody) == {"events", "seq"}
    assert fbody["seq"] == obody["seq"] and fspans == ospans
    for mine, theirs, certain in zip(fbody["events"], obody["events"], sure):
        if certain:
            assert typed(fastcheck.as_event(mine)) == typed(validate_event(theirs, limits))
        else:  # the same decoding (bytes compared: a NaN is not equal to itself)
            assert msgpack.packb(mine, use_bin_type=True) == msgpack.packb(theirs, use_bin_type=True)


LIMITS = st.sampled_from([
    wire.DEFAULT_LIMITS,
    wire.Limits(max_string_bytes=16, max_attrs=2, max_list_items=1),
    wire.Limits(max_string_bytes=5, max_attrs=0, max_list_items=0),
])

# Values one character or one step away from valid: what a buggy SDK sends.
NEAR_VALUES = [
    "0" * 32, "0" * 16, "4bf92f3577b34da6a3ce929d0e0e4736\n", "00f067aa0ba902b7\n", "4BF92F3577B34DA6A3CE929D0E0E4736",
    "authn.login\n", "authn", "Authn.login", "a." * 70 + "b", "0193a3c4-5e6f-7a1b-8c2d-3e4f5a6b7c8d\n",
    "0193a3c4-5e6f-6a1b-8c2d-3e4f5a6b7c8d", "é" * 1100, "x" * 1025, "€" * 1024, "", 1.0, 2.5, float("nan"), float("inf"),
    -1, 2**63, 2**64 - 1, True, None, [], {}, [1.0], [[1]], ["a"] * 65, "\x00", "a b", "authn.login x",
    "0193a3c4-5e6f-7a1b-8c2d-3e4f5a6b7c8d 4bf92f3577b34da6a3ce929d0e0e4736", b"authn.login",
    "€" * 1366, "€" * 22, "😀" * 17, ["€" * 1366],  # over 4096 / 64 UTF-8 bytes in few characters
]
NEAR_FIELD_NAMES = ["id", "ts", "type", "outcome", "trace_id", "span_id", "severity", "resource", "reason",
                    "duration_us", "v", "source.platform", "source.pid", "source.host", "source.extra", "actor.user",
                    "actor.extra", "attrs.k", "attrs.bad key", "attrs.a b", "attrs.1x", "attrs.ok\n", "attrs.é",
                    "extra_field", "tenant", "seq"]
NEAR_MISSES = st.sampled_from(NEAR_VALUES)
NEAR_FIELDS = st.sampled_from(NEAR_FIELD_NAMES)


def with_value(event: dict, field: str, value) -> dict:
    """A copy of ``event`` with ``field`` ("name" or "map.key") set to ``value``."""
    event = dict(event)
    head, _, tail = field.partition(".")
    if tail:
        inner = event.get(head)
        event[head] = inner = dict(inner) if type(inner) is dict else {}
        inner[tail] = value
    else:
        event[field] = value
    return event


@pytest.mark.parametrize("limits", [wire.DEFAULT_LIMITS, wire.Limits(max_string_bytes=64, max_attrs=2, max_list_items=1)], ids=["default", "small"])
def test_every_near_miss_on_every_field_goes_to_validate_event_unless_valid(limits):
    base = make_event(severity="low", actor={"user": "u"}, resource="r", reason="ok", duration_us=1, attrs={"z": 1})
    accepted = 0
    for field in NEAR_FIELD_NAMES:
        for value in NEAR_VALUES:
            accepted += assert_fast_agrees(props.pack_raw(with_value(base, field, value)), limits) is not None
    assert accepted > 0  # some near misses are valid (an int attr, an empty reason...) and take the fast path


@st.composite
def near_miss_events(draw) -> dict:
    event = draw(props.valid_events())
    for key in ("seq", "received_ns", "publisher", "tenant"):
        event.pop(key, None)  # so that the fast path gets a chance at them
    for _ in range(draw(st.integers(1, 2))):
        event = with_value(event, draw(NEAR_FIELDS), draw(NEAR_MISSES))
    return event


@PROPERTY
@given(event=st.one_of(props.valid_events(), props.hostile_events(), near_miss_events()), limits=LIMITS, data=st.data())
def test_fast_accept_implies_validate_event_accepts_the_same_event(event, limits, data):
    assert_fast_agrees(props.pack_raw(data.draw(props.shuffled(event))), limits)


@PROPERTY
@given(events=st.lists(st.one_of(props.valid_events(), props.hostile_events(), near_miss_events()), max_size=5),
       seq=st.integers(0, 2**64 - 1), limits=LIMITS)
def test_fast_pub_split_agrees_with_the_existing_split(events, seq, limits):
    assert_pub_split_agrees(props.pack_raw({"events": events, "seq": seq}), limits)


def test_fast_path_takes_the_common_sdk_event():
    event = make_event(severity="high", actor={"user": "alice", "ip": "10.0.0.1"}, resource="doc/1", reason="ok",
                       duration_us=12, attrs={"zeta": [1, "a", None, True], "alg": "ed25519", "n": -5})
    fast = assert_fast_agrees(props.pack_raw(event))
    assert fast is not None
    assert list(fast["attrs"]) == ["alg", "n", "zeta"]  # sorted like validate_event, even though sent unsorted


def test_duplicate_keys_keep_the_last_value_as_msgpack_python_does():
    event = make_event()
    first = msgpack.packb(event, use_bin_type=True)
    # the same map with "type" given twice: a valid value, then an invalid one
    twice = bytes([first[0] + 1]) + first[1:] + msgpack.packb("type") + msgpack.packb("NOT VALID")
    assert fastcheck.fast_validate(twice) is None
    assert isinstance(slow(twice, wire.DEFAULT_LIMITS), wire.WireError)
    twice = bytes([first[0] + 1]) + first[1:] + msgpack.packb("type") + msgpack.packb("authz.check")
    assert assert_fast_agrees(twice)["type"] == "authz.check"


def test_pub_split_steps_aside_for_unusual_bodies():
    events = make_events(2)
    limits = wire.DEFAULT_LIMITS
    good = wire.pack({"events": events, "seq": 3})
    assert fastcheck.split_pub([wire.MAGIC, wire.PUB, good], limits)[2] == [True, True]
    for body in (
        wire.pack({"events": events, "seq": 3, "extra": 1}),  # another key: the existing split keeps it
        wire.pack({"events": events, "seq": -1}),  # a bad seq: the codec's precise ERR
        wire.pack({"events": events}),
        good + b"\x00",  # trailing bytes
        good[:-4],  # truncated
        wire.pack({"events": make_events(3), "seq": 1}),
    ):
        small = wire.Limits(max_batch_events=2)
        assert fastcheck.split_pub([wire.MAGIC, wire.PUB, body], small) is None
    ext = msgpack.packb({"events": [events[0], {"v": msgpack.ExtType(1, b"x")}], "seq": 1}, use_bin_type=True)
    assert fastcheck.split_pub([wire.MAGIC, wire.PUB, ext], limits) is None  # ext: whole-request ERR as before
    assert fastcheck.split_pub([wire.MAGIC, wire.PING, good], limits) is None


# --------------------------------------------------------------------------
# (c) a real broker


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = start_broker(tmp_path_factory.mktemp("fastcheck"), handlers=[], config={"limits": {"max_attrs": 2}})
    yield b
    b.stop()


def test_broker_rejects_invalid_events_precisely_and_stores_the_rest_as_sent(broker):
    zero_trace = make_event(trace_id="0" * 32)
    newline_type = make_event(type="authn.login\n")
    too_many_attrs = make_event(attrs={"a": 1, "b": 2, "c": 3})  # over this broker's max_attrs of 2
    with_float = make_event(attrs={"score": 0.75})  # valid, through the slow path
    plain = make_events(2, attrs={"alg": "ed25519"})
    batch = [plain[0], zero_trace, newline_type, with_float, too_many_attrs, plain[1]]
    limits = wire.DEFAULT_LIMITS.with_overrides({"max_attrs": 2})
    before = broker.healthz()["rejects"].get("invalid", 0)
    with RawClient(broker.ingest) as client:
        ack = client.publish(batch, seq=9)
    assert ack["accepted"] == 3 and ack["duplicate"] == 0 and ack["seq"] == 9
    expected = []
    for index in (1, 2, 4):
        with pytest.raises(wire.WireError) as caught:
            validate_event(batch[index], limits)
        expected.append([index, caught.value.code, caught.value.message])
    assert ack["rejected"] == expected
    assert [r[2] for r in ack["rejected"]] == [
        "trace_id: must not be all zeros",
        "type: expected lowercase dotted segments of [a-z0-9_] (at least two, at most 128 characters), got 'authn.login\\n'",
        "attrs: 3 attrs exceed the limit of 2",
    ]
    wait_until(lambda: broker.healthz()["rejects"].get("invalid", 0) == before + 3, message="3 invalid counted")
    stored = {e["id"]: e for e in broker.events()}
    for event in (plain[0], with_float, plain[1]):
        assert {k: v for k, v in stored[event["id"]].items() if k not in ("seq", "received_ns", "publisher", "tenant")} == event
    for event in (zero_trace, newline_type, too_many_attrs):
        assert event["id"] not in stored
    with sqlite3.connect(broker.data_dir / "events.db") as db:
        bodies = dict(db.execute("SELECT id, body FROM events WHERE id IN (?, ?)", (plain[0]["id"], plain[1]["id"])))
    assert bodies[plain[0]["id"]] == wire.pack(plain[0]) and bodies[plain[1]["id"]] == wire.pack(plain[1])
