"""Bad input of every kind: a precise code, counted, and every other client keeps being served.

Each test sends one kind of bad request from one client, checks the reply
code (and that the message names the field), checks ``/healthz`` counted it,
and proves the broker still serves a second, well-behaved client.
"""

from __future__ import annotations

import os

import msgpack
import pytest

from secbus_sdk import wire
from support.broker import RawClient, wait_until
from support.events import make_event, make_events


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory):
    from support.broker import start_broker

    b = start_broker(tmp_path_factory.mktemp("bad-input"), handlers=[], config={"limits": {"max_event_bytes": 4096}})
    yield b
    b.stop()


def rejects(b) -> dict:
    return b.healthz()["rejects"]


def still_serves_others(b) -> None:
    with RawClient(b.ingest) as other:
        ack = other.publish(make_events(1))
        assert ack["accepted"] == 1


def expect_err(b, frames, code, field_text=None):
    before = rejects(b).get(code, 0)
    with RawClient(b.ingest) as c:
        c.send_frames(frames)
        command, body = c.recv()
    assert command == wire.ERR, body
    assert body["code"] == code, body
    if field_text:
        assert field_text in body["message"], body
    assert rejects(b).get(code, 0) == before + 1
    still_serves_others(b)
    return body


def test_garbage_bytes_get_err_malformed(shared_broker):
    expect_err(shared_broker, [os.urandom(40)], "malformed", "frames: expected 3")


def test_wrong_frame_count_gets_err_malformed(shared_broker):
    expect_err(shared_broker, [wire.MAGIC, wire.PING], "malformed", "got 2")
    expect_err(shared_broker, [wire.MAGIC, wire.PING, wire.pack({}), b"extra"], "malformed", "got 4")
    expect_err(shared_broker, [b"x"] * 5000, "malformed", "got 5000")  # extra frames are dropped, not held


def test_wrong_magic_gets_err_malformed(shared_broker):
    expect_err(shared_broker, [b"HTTP/1.1", wire.PING, wire.pack({})], "malformed", "frame 0")


def test_other_protocol_major_gets_err_unsupported_version(shared_broker):
    expect_err(shared_broker, [b"SECBUS2", wire.PING, wire.pack({})], "unsupported_version", "SECBUS2")


def test_unknown_command_gets_err_malformed(shared_broker):
    expect_err(shared_broker, [wire.MAGIC, b"DELETE", wire.pack({})], "malformed", "unknown command")


def test_reply_command_sent_as_request_gets_err_malformed(shared_broker):
    body = expect_err(shared_broker, [wire.MAGIC, wire.ACK, wire.pack({"seq": 4})], "malformed", "ACK is a reply")
    assert body["seq"] == 4


def test_body_that_is_not_msgpack_gets_err_malformed(shared_broker):
    expect_err(shared_broker, [wire.MAGIC, wire.PUB, b"\xc1\xc1\xc1 not msgpack"], "malformed", "body")


def test_body_that_is_not_a_map_gets_err_malformed(shared_broker):
    expect_err(shared_broker, [wire.MAGIC, wire.PUB, wire.pack([1, 2, 3])], "malformed", "expected a map")


def test_msgpack_declaring_huge_lengths_gets_err_malformed(shared_broker):
    # str32 / array32 / map32 headers claiming 4 GiB, followed by a few bytes
    for header in (b"\xdb\xff\xff\xff\xff", b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff"):
        expect_err(shared_broker, [wire.MAGIC, wire.PUB, header + b"abc"], "malformed", "body")


def test_deeply_nested_msgpack_gets_err_malformed(shared_broker):
    nested = b"\x91" * 100_000 + b"\xc0"  # 100k nested one-element arrays
    expect_err(shared_broker, [wire.MAGIC, wire.PUB, nested], "malformed", "body")


def test_pub_without_seq_gets_err_malformed_naming_seq(shared_broker):
    expect_err(shared_broker, [wire.MAGIC, wire.PUB, wire.pack({"events": []})], "malformed", "seq:")


def test_pub_with_events_not_a_list_gets_err_malformed_with_its_seq(shared_broker):
    body = expect_err(shared_broker, [wire.MAGIC, wire.PUB, wire.pack({"seq": 9, "events": {"a": 1}})], "malformed", "events:")
    assert body["seq"] == 9


def test_batch_over_the_event_limit_gets_err_too_large_and_stores_nothing(shared_broker):
    b = shared_broker
    head = b.healthz()["log"]["streams"]["events"]["head"]
    body = expect_err(b, wire.encode_frames(wire.PUB, {"seq": 5, "events": [make_event() for _ in range(1001)]}), "too_large", "1001 events")
    assert body["seq"] == 5
    assert b.healthz()["log"]["streams"]["events"]["head"] == head + 1  # only still_serves_others' event


def test_batch_over_the_byte_limit_gets_err_too_large(shared_broker):
    limits = wire.DEFAULT_LIMITS
    big: list[dict] = []
    while len(wire.pack({"seq": 1, "events": big})) <= limits.max_batch_bytes:
        big.append(make_event(attrs={"k": "x" * 3000}))  # under the event limit, over the batch limit together
    frames = wire.encode_frames(wire.PUB, {"seq": 1, "events": big})
    assert len(frames[2]) < limits.max_frame_bytes  # ZeroMQ lets it through; the broker must answer
    expect_err(shared_broker, frames, "too_large", "bytes exceeds")


def test_event_over_the_event_size_limit_is_rejected_too_large_in_the_ack(shared_broker):
    b = shared_broker
    before = rejects(b).get("too_large", 0)
    big = make_event(attrs={f"k{i}": "y" * 1000 for i in range(6)})  # > 4096 bytes (limit set above)
    with RawClient(b.ingest) as c:
        ack = c.publish([big, make_event()])
    assert ack["accepted"] == 1
    assert ack["rejected"][0][:2] == [0, "too_large"]
    assert rejects(b)["too_large"] == before + 1


def test_events_with_wrong_types_or_missing_fields_are_rejected_invalid_by_field(shared_broker):
    b = shared_broker
    cases = {
        "ts": make_event(ts="yesterday"),
        "outcome": make_event(outcome="maybe"),
        "span_id": make_event(span_id=123),
        "source.service": make_event(source={"platform": "python", "sdk": "x"}),
        "attrs": make_event(attrs={"a": {"nested": 1}}),
        "event": "not a map",
    }
    missing = make_event()
    del missing["trace_id"]
    cases["trace_id"] = missing
    before = rejects(b).get("invalid", 0)
    with RawClient(b.ingest) as c:
        ack = c.publish(list(cases.values()))
    assert ack["accepted"] == 0
    assert len(ack["rejected"]) == len(cases)
    for (field, _), (index, code, message) in zip(cases.items(), ack["rejected"]):
        assert code == "invalid"
        assert field in message, (field, message)
    assert rejects(b)["invalid"] == before + len(cases)
    still_serves_others(b)


def test_message_over_maxmsgsize_drops_only_that_connection_and_is_counted(shared_broker):
    b = shared_broker
    closed = b.healthz()["ingest"]["connections_closed"]
    with RawClient(b.ingest) as bad, RawClient(b.ingest) as good:
        good.ping()
        bad.send_frames([wire.MAGIC, wire.PUB, b"\x00" * (2 * 1024 * 1024)])
        wait_until(lambda: b.healthz()["ingest"]["connections_closed"] > closed, message="the oversized connection to be dropped")
        assert good.publish(make_events(1))["accepted"] == 1
    still_serves_others(b)


def test_msgpack_with_a_bin_value_or_ext_type_is_rejected(shared_broker):
    b = shared_broker
    ext = msgpack.packb({"seq": 1, "events": [msgpack.ExtType(5, b"x")]})
    expect_err(b, [wire.MAGIC, wire.PUB, ext], "malformed", "body")
    event = make_event()
    event["attrs"] = {"blob": b"\x00\x01"}
    with RawClient(b.ingest) as c:
        c.send_frames([wire.MAGIC, wire.PUB, msgpack.packb({"seq": 2, "events": [event]}, use_bin_type=True)])
        command, body = c.recv()
    assert command == wire.ACK and body["rejected"][0][1] == "invalid"
