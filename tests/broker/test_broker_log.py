"""The event log interface on the real SQLite implementation (no broker process).

These pin down what ingest, handlers and correlation rely on: offsets,
deduplication by id, cursors, lookups by trace and by tenant/type/time, and
retention that never passes a floor.
"""

from __future__ import annotations

import re
import time

import pytest

from secbus.log.base import StampedEvent
from secbus.log.cache import CachedLog
from secbus.log.sqlite import LogMissing, SqliteLog
from secbus_sdk import wire
from support.events import make_event


def stamped(event: dict, tenant: str = "default", received_ns: int | None = None) -> StampedEvent:
    return StampedEvent(event["id"], event["ts"], event["type"], event["trace_id"], received_ns or time.time_ns(), "anonymous", tenant, wire.pack(event), dict(event))


@pytest.fixture(params=["sqlite", "cached"])
def log(request, tmp_path):
    inner = SqliteLog(tmp_path)
    log = inner if request.param == "sqlite" else CachedLog(inner, capacity=8)
    yield log
    log.close()


def test_offsets_start_at_one_and_duplicates_get_none(log):
    a, b = make_event(), make_event()
    assert log.append_events([stamped(a), stamped(b), stamped(a)]) == [1, 2, None]
    assert log.append_events([stamped(b), stamped(make_event())]) == [None, 3]
    assert log.head("events") == 3 and log.first("events") == 1
    assert [e["id"] for e in log.read("events", 1, 10)][:1] == [b["id"]]


def test_a_duplicate_late_in_a_large_batch_rolls_back_nothing_else(log, tmp_path):
    """Appends insert first and fall back to looking ids up only when the UNIQUE index
    refuses one: the events before and after the duplicate are still stored, once,
    with consecutive offsets, and the rolled-back attempt leaves no trace."""
    old = make_event()
    assert log.append_events([stamped(old)]) == [1]
    fresh = [make_event() for _ in range(1200)]  # more than one multi-row INSERT
    batch = [stamped(e) for e in fresh[:1100]] + [stamped(old)] + [stamped(e) for e in fresh[1100:]]
    assert log.append_events(batch) == list(range(2, 1102)) + [None] + list(range(1102, 1202))
    assert log.head("events") == 1201
    assert log.append_events([stamped(make_event())]) == [1202]
    reopened = SqliteLog(tmp_path, create=False)
    try:
        assert reopened.head("events") == 1202
        ids = [e["id"] for e in reopened.read("events", 0, 2000)]
        assert len(ids) == len(set(ids)) == 1202
        assert ids[1:1201] == [e["id"] for e in fresh]
    finally:
        reopened.close()


def test_reads_are_bounded_and_in_log_order_beyond_the_cache(log):
    events = [make_event() for _ in range(30)]
    for i in range(0, 30, 5):
        log.append_events([stamped(e) for e in events[i : i + 5]])
    got, after = [], 0
    while batch := log.read("events", after, 7):
        assert len(batch) <= 7
        got += batch
        after = batch[-1]["seq"]
    assert [e["id"] for e in got] == [e["id"] for e in events]
    assert [e["seq"] for e in got] == list(range(1, 31))


def test_cursors_are_stored_per_consumer_and_stream(log, tmp_path):
    assert log.get_cursor("audit", "events") is None
    log.set_cursor("audit", "events", 42)
    log.set_cursor("audit", "alerts", 3)
    reopened = SqliteLog(tmp_path, create=False)
    try:
        assert reopened.get_cursor("audit", "events") == 42
        assert reopened.cursors() == {("audit", "events"): 42, ("audit", "alerts"): 3}
    finally:
        reopened.close()


def test_query_filters_by_tenant_type_prefix_and_time(log):
    now = time.time_ns()
    rows = [
        (make_event("authn.login", ts=now), "acme"),
        (make_event("authn.token.verify", ts=now + 10), "acme"),
        (make_event("authz.check", ts=now + 20), "acme"),
        (make_event("authn.login", ts=now + 30), "globex"),
    ]
    log.append_events([stamped(e, tenant) for e, tenant in rows])
    assert [e["type"] for e in log.query(tenant="acme", type_prefix="authn.")] == ["authn.login", "authn.token.verify"]
    assert [e["tenant"] for e in log.query(type_prefix="authn.login")] == ["acme", "globex"]
    assert [e["ts"] for e in log.query(since_ns=now + 10, until_ns=now + 30)] == [now + 10, now + 20]
    assert len(log.query(limit=2)) == 2


def test_query_filters_by_outcome_across_pages_and_stops_at_the_limit(log, monkeypatch):
    """outcome is inside the body: rows are read in pages and tested decoded; the limit and the
    other filters still hold, and a page boundary loses nothing."""
    import secbus.log.sqlite as sqlite_log

    monkeypatch.setattr(sqlite_log, "_QUERY_PAGE", 7)
    now = time.time_ns()
    events = [make_event("authn.login" if i % 2 else "authz.check", ts=now + i, outcome="failure" if i % 3 == 0 else "success")
              for i in range(60)]
    log.append_events([stamped(e, "acme") for e in events])
    failures = [e["id"] for e in events if e["outcome"] == "failure"]
    assert [e["id"] for e in log.query(outcome="failure")] == failures
    assert [e["id"] for e in log.query(outcome="failure", limit=5)] == failures[:5]
    logins = [e["id"] for e in events if e["outcome"] == "failure" and e["type"] == "authn.login"]
    assert [e["id"] for e in log.query(outcome="failure", type_prefix="authn.")] == logins
    assert log.query(outcome="error") == []
    assert [e["id"] for e in log.query(outcome="failure", newest=True, limit=3)] == failures[::-1][:3]
    assert [e["id"] for e in log.query(newest=True, limit=2, type_prefix="authz.")] == [e["id"] for e in events if e["type"] == "authz.check"][::-1][:2]
    assert [e["id"] for e in log.query(since_ns=now + 50, outcome="success")] == [e["id"] for e in events[50:] if e["outcome"] == "success"]


def test_query_filters_by_body_fields_actor_source_and_attrs(log, monkeypatch):
    """An analyst's "what did alice do": fields inside the body, nested ones by path, attrs of
    any scalar type compared as text; every field must hold, across page boundaries."""
    import secbus.log.sqlite as sqlite_log

    monkeypatch.setattr(sqlite_log, "_QUERY_PAGE", 5)
    now = time.time_ns()
    events = [make_event("authn.signature.verify", ts=now + i, service="billing" if i % 2 else "web",
                         actor={"user": "alice" if i % 3 == 0 else "bob", "key_id": f"k-{i % 4}"},
                         attrs={"alg": "ed25519", "bytes": 256 if i % 5 else 512, "cached": i % 2 == 0},
                         resource=f"doc/{i}")
              for i in range(40)]
    log.append_events([stamped(e) for e in events])

    def ids(**fields) -> list[str]:
        return [e["id"] for e in log.query(fields=fields)]

    def expected(test) -> list[str]:
        return [e["id"] for e in events if test(e)]

    assert ids(**{"actor.user": "alice"}) == expected(lambda e: e["actor"]["user"] == "alice")
    assert ids(**{"actor.user": "alice", "source.service": "billing"}) == expected(
        lambda e: e["actor"]["user"] == "alice" and e["source"]["service"] == "billing")
    assert ids(**{"actor.key_id": "k-3", "attrs.bytes": "512"}) == expected(
        lambda e: e["actor"]["key_id"] == "k-3" and e["attrs"]["bytes"] == 512)
    assert ids(**{"attrs.cached": "true"}) == expected(lambda e: e["attrs"]["cached"])
    assert ids(resource="doc/7") == [events[7]["id"]]
    assert ids(**{"actor.user": "mallory"}) == []
    assert ids(**{"attrs.missing": "x"}) == []
    # "alice" is in no bob event's body, but "k-1" is in alice's key ids and in bob's: only the test decides
    assert [e["id"] for e in log.query(outcome="success", fields={"actor.key_id": "k-1"}, newest=True, limit=2)] == \
        expected(lambda e: e["actor"]["key_id"] == "k-1")[::-1][:2]


@pytest.mark.parametrize("fields, message", [
    ({"actor.name": "x"}, "got 'actor.name'"),
    ({"type": "authn.login"}, "got 'type'"),
    ({"attrs.bad key": "x"}, "got 'attrs.bad key'"),
    ({"outcome": 1}, "fields['outcome']: expected a string to compare with, got 1"),
])
def test_query_with_an_unknown_field_names_it(log, fields, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        log.query(fields=fields)


def test_trace_lookup_joins_closed_traces_and_open_events_in_time_order(log):
    first = make_event(ts=100)
    second = make_event(trace_id=first["trace_id"], ts=50)
    late = make_event(trace_id=first["trace_id"], ts=200)
    log.append_events([stamped(first), stamped(second)])
    closed = log.read("events", 0, 10)
    log.append("traces", [{"tenant": "default", "trace_id": first["trace_id"], "events": closed, "first_seq": 1}], cursor=("correlator", 2))
    log.append_events([stamped(late), stamped(make_event())])
    found = log.trace(None, first["trace_id"], open_after=2)
    assert [e["id"] for e in found] == [second["id"], first["id"], late["id"]]
    assert log.trace("other-tenant", first["trace_id"], open_after=2) == []


def test_a_trace_appended_again_with_dedupe_is_stored_once(log):
    trace = {"tenant": "default", "trace_id": "ab" * 16, "events": [], "first_seq": 7}
    assert log.append("traces", [trace]) == [1]
    assert log.append("traces", [trace], dedupe=True) == [None]
    assert log.append("traces", [{**trace, "first_seq": 9}], dedupe=True) == [2]


def test_retention_deletes_by_age_but_never_past_the_floor(log):
    old = time.time_ns() - 10**12
    log.append_events([stamped(make_event(), received_ns=old) for _ in range(10)])
    log.append_events([stamped(make_event())])
    deleted = log.retain(max_age_ns=10**9, max_bytes=10**12, floor={"events": 4}, now_ns=time.time_ns())
    assert deleted == 4 and log.first("events") == 5
    while log.retain(max_age_ns=10**9, max_bytes=10**12, floor={"events": 11}, now_ns=time.time_ns()):
        pass
    assert log.first("events") == 11  # the fresh event stays
    assert log.head("events") == 11


def test_opening_a_missing_log_without_create_names_the_path(tmp_path):
    with pytest.raises(LogMissing, match="no event log in"):
        SqliteLog(tmp_path / "nowhere", create=False)


def test_retention_by_size_deletes_oldest_first_down_to_the_floor(log):
    log.append_events([stamped(make_event()) for _ in range(20)])
    while log.retain(max_age_ns=10**18, max_bytes=1, floor={"events": 15}, now_ns=time.time_ns(), chunk=4):
        pass
    assert log.first("events") == 16 and log.head("events") == 20
    assert [e["seq"] for e in log.read("events", 0, 100)] == [16, 17, 18, 19, 20]


def test_a_range_read_as_one_aggregate_row_equals_the_row_by_row_read(tmp_path):
    """SqliteLog reads a range of events as one row (bodies back to back, columns as JSON); it
    must return exactly what reading row by row does, whatever the bodies hold."""
    log = SqliteLog(tmp_path)
    try:
        events = []
        for i in range(300):
            event = make_event()
            event["attrs"] = {"n": i, "zero": 0, "big": 2**63 - 1, "text": "ü\u2028\x00'\"," * (i % 4), "flag": i % 2 == 0}
            events.append(event)
        for i in range(0, 300, 50):
            log.append_events([stamped(e, tenant=f"tenant-{i % 3}, \"quoted\" é", received_ns=i + 1) for e in events[i:i + 50]])
        aggregate = [log.read_stored(after, 64) for after in (0, 17, 250, 299, 300)]
        decoded = [log.read("events", after, 64) for after in (0, 17, 250, 299, 300)]
        log._range_reads = False
        by_row = [log.read_stored(after, 64) for after in (0, 17, 250, 299, 300)]
        assert aggregate == by_row
        assert [len(rows) for rows in aggregate] == [64, 64, 50, 1, 0]
        assert decoded == [log.read("events", after, 64) for after in (0, 17, 250, 299, 300)]
        assert [e["attrs"] for e in decoded[0]] == [e["attrs"] for e in events[:64]]
    finally:
        log.close()


def test_committed_payload_unpacks_to_what_the_log_returns(tmp_path):
    """What ingest hands the consumer process (secbus.log.committed) is what reading the log gives."""
    from secbus.log import committed

    log = SqliteLog(tmp_path)
    try:
        log.append_events([stamped(make_event()) for _ in range(3)])
        records = [stamped(make_event(), tenant=f"t{i % 2}") for i in range(10)]
        records.insert(4, records[2])  # a duplicate in the same commit: not stored, not sent
        seqs = log.append_events(records)
        payload = committed.pack(records, seqs)
        assert committed.last_seq(payload) == 13
        assert committed.rows(payload, 3) == log.read_stored(3, 100)
        assert committed.rows(payload, 8) == log.read_stored(8, 100)  # an overlap is skipped
    finally:
        log.close()


def test_without_sqlite_json_functions_ranges_are_read_row_by_row(tmp_path, monkeypatch, caplog):
    import secbus.log.sqlite as sqlite_log

    log = SqliteLog(tmp_path)
    try:
        log.append_events([stamped(make_event()) for _ in range(5)])
        expected = log.read_stored(0, 10)
        monkeypatch.setattr(sqlite_log, "_EVENT_RANGE", "SELECT no_such_json_function(?, ?)")
        with caplog.at_level("INFO", logger="secbus.log"):
            assert log.read_stored(0, 10) == expected
        assert log._range_reads is False
        assert "reading row by row" in caplog.text
    finally:
        log.close()


def test_a_new_log_has_16k_pages_and_a_log_with_4k_pages_keeps_working(tmp_path):
    import sqlite3

    from secbus.log.sqlite import EVENTS_PAGE_SIZE

    def page_size(path):
        with sqlite3.connect(path) as conn:
            return conn.execute("PRAGMA page_size").fetchone()[0]

    (tmp_path / "new").mkdir()
    fresh = SqliteLog(tmp_path / "new")
    fresh.append_events([stamped(make_event())])
    fresh.close()
    assert page_size(tmp_path / "new" / "events.db") == EVENTS_PAGE_SIZE == 16384
    assert page_size(tmp_path / "new" / "state.db") == 4096  # low volume: SQLite's default

    old = tmp_path / "old"
    old.mkdir()
    with sqlite3.connect(old / "events.db") as conn:  # a log created before the change
        conn.execute("PRAGMA journal_mode=WAL")
    reopened = SqliteLog(old)
    events = [make_event() for _ in range(300)]
    assert reopened.append_events([stamped(e) for e in events]) == list(range(1, 301))
    assert [e["id"] for e in reopened.read("events", 0, 1000)] == [e["id"] for e in events]
    reopened.close()
    assert page_size(old / "events.db") == 4096
