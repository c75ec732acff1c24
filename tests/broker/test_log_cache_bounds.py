"""The log's tail cache stays within its byte bound whatever the events' size,
and a reader still gets every event (from the log once the cache has dropped it).

Runs on the real SQLite log; no broker process needed."""

from __future__ import annotations

import time

import pytest

from secbus.log.base import StampedEvent
from secbus.log.cache import STAMP_BYTES, CachedLog
from secbus.log.sqlite import SqliteLog
from secbus_sdk import wire
from support.events import make_event


def stamped(event: dict) -> StampedEvent:
    return StampedEvent(event["id"], event["ts"], event["type"], event["trace_id"], time.time_ns(), "anonymous", "default", wire.pack(event), dict(event))


def big_event(size: int) -> dict:
    event = make_event()
    event.setdefault("attributes", {})["blob"] = "x" * size
    return event


@pytest.fixture
def inner(tmp_path):
    log = SqliteLog(tmp_path)
    yield log
    log.close()


def test_cache_never_holds_more_encoded_bytes_than_its_bound(inner):
    max_bytes = 20_000
    log = CachedLog(inner, capacity=10_000, max_bytes=max_bytes)
    for round_ in range(30):
        batch = [stamped(big_event(500 + 300 * (i % 7))) for i in range(20)]
        log.append_events(batch)
        cache = log.stats()["cache"]["events"]
        assert 0 < cache["bytes"] <= max_bytes, f"round {round_}: cache holds {cache['bytes']} B, bound {max_bytes}"
        assert cache["records"] < 10_000, "the byte bound, not the record count, must be what limits big events"


def test_cache_counts_each_event_at_its_encoded_size(inner):
    log = CachedLog(inner, capacity=100, max_bytes=10**9)
    events = [make_event() for _ in range(5)]
    log.append_events([stamped(e) for e in events])
    assert log.stats()["cache"]["events"]["bytes"] == sum(len(wire.pack(e)) + STAMP_BYTES for e in events)


def test_cache_keeps_the_newest_events_and_readers_still_get_every_event(inner):
    log = CachedLog(inner, capacity=10_000, max_bytes=8_000)
    events = [big_event(1000) for _ in range(40)]
    for i in range(0, 40, 10):
        log.append_events([stamped(e) for e in events[i : i + 10]])
    cache = log.stats()["cache"]["events"]
    assert 1 <= cache["records"] <= 8
    newest = log.read("events", 40 - cache["records"], 100)
    assert [e["id"] for e in newest] == [e["id"] for e in events[-cache["records"]:]]
    everything = log.read("events", 0, 100)  # older than the cache: read back from SQLite
    assert [e["id"] for e in everything] == [e["id"] for e in events]


def test_one_event_larger_than_the_bound_is_not_cached_but_still_read(inner):
    log = CachedLog(inner, capacity=100, max_bytes=1_000)
    event = big_event(5_000)
    assert log.append_events([stamped(event)]) == [1]
    assert log.stats()["cache"]["events"]["bytes"] == 0
    assert [e["id"] for e in log.read("events", 0, 10)] == [event["id"]]


def test_trace_records_are_bounded_by_bytes_too(inner):
    log = CachedLog(inner, capacity=10_000, max_bytes=40_000)  # traces tail: 10 000 B
    for i in range(30):
        log.append("traces", [{"tenant": "default", "trace_id": f"{i:032x}", "first_seq": i, "events": [{"note": "y" * 900}]}])
        assert log.stats()["cache"]["traces"]["bytes"] <= 10_000
    assert len(log.read("traces", 0, 100)) == 30


@pytest.mark.parametrize("kwargs", [{"capacity": 0}, {"max_bytes": 0}])
def test_cache_rejects_a_non_positive_bound(inner, kwargs):
    with pytest.raises(ValueError, match="capacity and max_bytes must be positive"):
        CachedLog(inner, **kwargs)
