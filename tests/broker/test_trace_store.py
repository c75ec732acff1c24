"""How closed traces are kept in state.db (secbus.log.traces): slim bodies, an index built in bulk.

A trace is stored with its events' offsets instead of the events, and read
back whole; lookups by trace id find traces both in the bulk-built index and
in the tail past its watermark; a log from before (a per-trace index, events
inline) is migrated on open and reads as before; retention prunes the index.
"""

from __future__ import annotations

import sqlite3
import time

import msgspec
import pytest

from secbus.log import traces as trace_store
from secbus.log.base import StampedEvent
from secbus.log.cache import CachedLog
from secbus.log.sqlite import SqliteLog
from secbus_sdk import wire
from support.events import make_event


def stamped(event: dict) -> StampedEvent:
    return StampedEvent(event["id"], event["ts"], event["type"], event["trace_id"], time.time_ns(), "anonymous", "default", wire.pack(event), None)


def trace_of(events: list[dict], **extra) -> dict:
    return {"tenant": "default", "trace_id": events[0]["trace_id"], "events": events, "event_count": len(events),
            "first_seq": min(e["seq"] for e in events), "flags": [], **extra}


@pytest.fixture
def log(tmp_path):
    log = SqliteLog(tmp_path)
    yield log
    log.close()


def stored_bodies(tmp_path) -> list[dict]:
    with sqlite3.connect(tmp_path / "state.db") as conn:
        return [msgspec.msgpack.decode(body) for (body,) in conn.execute("SELECT body FROM traces ORDER BY seq")]


def test_a_trace_is_stored_slim_and_read_back_with_its_events_in_trace_order(log, tmp_path):
    later = make_event(ts=200)
    earlier = make_event(trace_id=later["trace_id"], ts=100)
    log.append_events([stamped(later), stamped(earlier), stamped(make_event())])
    events = log.read("events", 0, 3)
    in_trace_order = [events[1], events[0]]
    assert log.append("traces", [trace_of(in_trace_order)]) == [1]

    (body,) = stored_bodies(tmp_path)
    assert "events" not in body and body["event_seqs"] == [2, 1]  # offsets, not a second copy
    (record,) = log.read("traces", 0, 10)
    assert record["events"] == in_trace_order and "event_seqs" not in record
    assert [e["id"] for e in log.trace(None, later["trace_id"])] == [earlier["id"], later["id"]]

    # retention took an event before its trace: the trace reads with the rest
    while log.retain(max_age_ns=10**15, max_bytes=1, floor={"events": 1, "traces": 0, "alerts": 0}, now_ns=time.time_ns()):
        pass
    (record,) = log.read("traces", 0, 10)
    assert [e["seq"] for e in record["events"]] == [2] and record["event_count"] == 2


def test_lookups_find_traces_in_the_bulk_index_and_in_the_tail_past_it(log, tmp_path, monkeypatch):
    monkeypatch.setattr(trace_store, "INDEX_BATCH", 3)
    again = "ab" * 16
    ids = []
    for i in range(8):
        trace_id = again if i in (1, 6) else f"{i + 1:032x}"
        ids.append(trace_id)
        log.append("traces", [{"tenant": "default", "trace_id": trace_id, "events": [], "first_seq": 10 * i}])
    with sqlite3.connect(tmp_path / "state.db") as conn:
        (indexed,) = conn.execute("SELECT value FROM state_meta WHERE key = 'trace_indexed'").fetchone()
        keys = conn.execute("SELECT count(*) FROM trace_index").fetchone()[0]
    assert indexed == 6 and keys == 6  # two bulk passes; traces 7 and 8 wait in the tail

    def firsts(trace_id: str) -> list[int]:
        _, st = log._conns()
        rows = trace_store.lookup(st, trace_id)
        return sorted(msgspec.msgpack.decode(body)["first_seq"] for _, body in rows)

    assert firsts(again) == [10, 60]  # seq 2 from the index, seq 7 from the tail past it
    assert firsts(ids[7]) == [70]
    assert firsts(ids[0]) == [0]
    assert firsts("cd" * 16) == []
    # a replay closing the same traces again stores nothing twice, indexed or not
    assert log.append("traces", [{"tenant": "default", "trace_id": ids[7], "events": [], "first_seq": 70},
                                 {"tenant": "default", "trace_id": ids[0], "events": [], "first_seq": 0}], dedupe=True) == [None, None]


def test_a_log_with_the_per_trace_index_is_migrated_and_its_inline_traces_still_read(tmp_path):
    event = make_event()
    log = SqliteLog(tmp_path)
    log.append_events([stamped(event)])
    (inline_event,) = log.read("events", 0, 1)
    log.close()
    # the format before secbus.log.traces: events inline, an index on trace_id, no bulk index
    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute("DROP TABLE trace_index")
        conn.execute("DELETE FROM state_meta")
        conn.execute("CREATE INDEX traces_trace ON traces (trace_id)")
        body = msgspec.msgpack.encode({"tenant": "default", "trace_id": event["trace_id"], "events": [inline_event], "first_seq": 1})
        conn.execute("INSERT INTO traces (tenant, trace_id, first_seq, closed_ns, body) VALUES ('default', ?, 1, 1, ?)", (event["trace_id"], body))

    log = SqliteLog(tmp_path)
    try:
        with sqlite3.connect(tmp_path / "state.db") as conn:
            assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'traces_trace'").fetchone() is None
            assert conn.execute("SELECT count(*) FROM trace_index").fetchone()[0] == 1
        (record,) = log.read("traces", 0, 10)
        assert record["events"] == [inline_event]
        assert [e["id"] for e in log.trace("default", event["trace_id"])] == [event["id"]]
    finally:
        log.close()


def test_a_long_tail_is_indexed_in_passes_and_every_trace_is_found(log, monkeypatch):
    monkeypatch.setattr(trace_store, "_PASS_ROWS", 3)
    ids = [f"{i + 1:032x}" for i in range(8)]
    log.append("traces", [{"tenant": "default", "trace_id": t, "events": [], "first_seq": i} for i, t in enumerate(ids)])
    _, st = log._conns()
    st.execute("BEGIN IMMEDIATE")
    trace_store.index_pending(st, 8)
    st.execute("COMMIT")
    assert st.execute("SELECT count(*) FROM trace_index").fetchone()[0] == 8
    assert trace_store.unindexed(st, 8) == 0
    assert all(len(trace_store.lookup(st, t)) == 1 for t in ids)


def test_retention_prunes_the_index_keys_of_deleted_traces(log, tmp_path, monkeypatch):
    monkeypatch.setattr(trace_store, "INDEX_BATCH", 2)
    for i in range(6):
        log.append("traces", [{"tenant": "default", "trace_id": f"{i + 1:032x}", "events": [], "first_seq": i}])
    while log.retain(max_age_ns=0, max_bytes=10**12, floor={"events": 0, "traces": 4, "alerts": 0}, now_ns=time.time_ns() + 1):
        pass
    with sqlite3.connect(tmp_path / "state.db") as conn:
        left = [seq for (seq,) in conn.execute("SELECT seq FROM trace_index ORDER BY seq")]
    assert left == [5, 6]
    assert log.trace(None, f"{1:032x}") == [] and log.first("traces") == 5


@pytest.mark.parametrize("trace_id", ["not-hex", "", "ABCDEF"])
def test_a_trace_key_never_raises(trace_id):
    assert isinstance(trace_store.trace_key(trace_id), int)


def test_a_trace_from_the_correlator_reads_the_same_from_the_cache_and_from_the_log(tmp_path):
    inner = SqliteLog(tmp_path)
    log = CachedLog(inner)
    try:
        events = [make_event() for _ in range(3)]
        log.append_events([stamped(e) for e in events])
        stored = log.read("events", 0, 3)
        # as the correlator in the consumer process closes it: events as msgpack, their offsets beside
        record = {"tenant": "default", "trace_id": events[0]["trace_id"], "events": [msgspec.Raw(msgspec.msgpack.encode(e)) for e in stored[::-1]],
                  "event_count": 3, "first_seq": 1, "flags": [], "event_seqs": [3, 2, 1]}
        assert log.append("traces", [record]) == [1]
        assert stored_bodies(tmp_path)[0]["event_seqs"] == [3, 2, 1]
        cached, from_log = log.read("traces", 0, 10)[0], inner.read("traces", 0, 10)[0]
        assert cached == from_log and list(cached) == list(from_log)  # same keys, same order, no event_seqs
        assert "event_seqs" not in cached and cached["events"] == stored[::-1]
    finally:
        log.close()
