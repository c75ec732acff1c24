"""Events kept as stored rows (secbus.log.stored): what the consumer process builds from the
bytes must be exactly what decoding gives, and the tail cache decodes only for dict readers.

Runs on the real SQLite log; no broker process needed."""

from __future__ import annotations

import time

import msgspec
import pluggy
import pytest

from secbus import hookimpl, hookspecs
from secbus.consumers.runner import HandlerRunner
from secbus.consumers.wakeup import Wakeup
from secbus.correlation import Correlator
from secbus.log import committed
from secbus.log.base import StampedEvent
from secbus.log.cache import CachedLog
from secbus.log.sqlite import SqliteLog
from secbus.log.stored import correlation_fields, decode_rows, stamped_bytes
from secbus_sdk import wire
from support.broker import wait_until
from support.events import make_event

decode = msgspec.msgpack.Decoder().decode
encode = msgspec.msgpack.Encoder().encode


def stamped(event: dict, tenant: str = "default") -> StampedEvent:
    return StampedEvent(event["id"], event["ts"], event["type"], event["trace_id"], time.time_ns(), "anonymous", tenant, wire.pack(event), None)


@pytest.mark.parametrize("keys", [1, 11, 12, 15, 16, 40])
def test_stamped_bytes_decode_to_the_event_with_its_stamps_in_order(keys):
    """The map header is rewritten for 4 more entries across fixmap (<= 15) and map 16 sizes."""
    body = encode({f"k{i:02d}": i for i in range(keys)})
    row = (7, 1_700_000_000_000_000_000, "pub-1", "acme", body)
    expected = decode_rows([row])[0]
    built = decode(stamped_bytes(row))
    assert built == expected and list(built) == list(expected)
    assert list(built)[-4:] == ["seq", "received_ns", "publisher", "tenant"]


def test_correlation_fields_read_what_the_correlator_needs_and_survive_an_odd_event():
    good = make_event()
    odd = {"trace_id": "ab" * 16, "ts": "not a number", "source": "not a map"}
    rows = [(1, 10, "p", "t", wire.pack(good)), (2, 11, "p", "t", encode(odd))]
    first, second = correlation_fields(rows)
    assert (first.trace_id, first.ts, first.outcome) == (good["trace_id"], good["ts"], good["outcome"])
    assert (first.source.platform, first.source.service) == (good["source"]["platform"], good["source"]["service"])
    assert (second.trace_id, second.ts, second.outcome, second.source.platform) == ("ab" * 16, 0, "unknown", None)


def test_a_trace_built_from_stored_rows_equals_the_trace_built_from_dicts(tmp_path):
    """The correlator runner feeds stored rows and keeps events as bytes; the record it stores
    must decode to what the dict path gives (events in time order, every stamped field)."""
    log = SqliteLog(tmp_path)
    try:
        trace_id = "cd" * 16
        events = []
        for i in range(5):
            event = make_event()
            event["trace_id"] = trace_id
            event["ts"] = 1_000 - i  # logged in reverse time order
            event["source"]["platform"] = "node" if i % 2 else "python"
            events.append(event)
        log.append_events([stamped(e) for e in events])
        rows = log.read_stored(0, 10)
        from_dicts = Correlator(trace_idle_ns=1)
        from_rows = Correlator(trace_idle_ns=1, raw_events=True)
        for event in log.read("events", 0, 10):
            from_dicts.add(event)
        for row, fields in zip(rows, correlation_fields(rows)):
            from_rows.add_encoded(row[3], fields.trace_id, row[1], row[0], fields.ts, fields.source.platform,
                                  fields.source.service, fields.outcome, stamped_bytes(row))
        [expected], [raw] = from_dicts.close_all(), from_rows.close_all()
        assert all(isinstance(e, msgspec.Raw) for e in raw["events"])
        assert raw.pop("event_seqs") == [e["seq"] for e in expected["events"]]  # for the log to store
        assert decode(encode(raw)) == expected
        assert [e["ts"] for e in expected["events"]] == sorted(e["ts"] for e in events)
        assert expected["flags"] == ["cross_platform"]
    finally:
        log.close()


def test_the_tail_cache_decodes_a_range_only_when_a_reader_asks_for_dicts(tmp_path):
    inner = SqliteLog(tmp_path)
    log = CachedLog(inner, capacity=100)
    try:
        records = [stamped(make_event(), tenant=f"t{i % 2}") for i in range(10)]
        payload = committed.pack(records, inner.append_events(records))
        log.put_rows(committed.rows(payload, 0))
        assert log.stats()["cache"]["events"] == {**log.stats()["cache"]["events"], "records": 10, "decoded": 0}
        assert log.read_stored(0, 10) == inner.read_stored(0, 10)  # rows, nothing decoded
        assert log.stats()["cache"]["events"]["decoded"] == 0
        first = log.read("events", 2, 3)
        assert first == inner.read("events", 2, 3)
        assert log.stats()["cache"]["events"]["decoded"] == 3
        assert log.read("events", 2, 3)[0] is first[0]  # decoded once, shared by every reader
        assert log.read("events", 0, 10) == inner.read("events", 0, 10)
        assert log.stats()["cache"]["events"]["decoded"] == 10
    finally:
        log.close()


def runners_for(log, plugins: dict, batch_size: int):
    """A real runner per plugin (by name) on ``log``, sharing one Wakeup; not started."""
    pm = pluggy.PluginManager("secbus")
    pm.add_hookspecs(hookspecs)
    for name, plugin in plugins.items():
        pm.register(plugin, name=name)
    wakeup = Wakeup()
    options = {"lag_policy": "block", "max_lag": 10**6, "batch_size": batch_size}
    return wakeup, [HandlerRunner(name, plugin, pm, log, wakeup, options) for name, plugin in plugins.items()]


class TakesStored:
    """Takes only ``stored`` in both hooks: event batches as rows, traces as (seq, body)."""

    def __init__(self):
        self.batches = []
        self.traces = []

    @hookimpl
    def on_events(self, stored):
        self.batches.append(stored)

    @hookimpl
    def on_trace(self, stored):
        self.traces.append(stored)


class TakesBoth:
    def __init__(self):
        self.batches = []

    @hookimpl
    def on_events(self, stored, events):
        self.batches.append((stored, events))


def test_the_runner_gives_on_events_only_the_arguments_it_declares_and_decodes_only_for_events(tmp_path):
    inner = SqliteLog(tmp_path)
    log = CachedLog(inner, capacity=100)
    rows_only, both = TakesStored(), TakesBoth()
    wakeup, runners = runners_for(log, {"rows-only": rows_only, "both": both}, batch_size=4)
    try:
        records = [stamped(make_event()) for _ in range(10)]
        log.put_rows(committed.rows(committed.pack(records, inner.append_events(records)), 0))
        wakeup.advance("events", 10)
        runners[0].start()
        wait_until(lambda: runners[0].cursors["events"] == 10, message="the rows-only handler read all 10")
        assert [row for batch in rows_only.batches for row in batch] == inner.read_stored(0, 10)
        assert max(map(len, rows_only.batches)) == 4
        assert log.stats()["cache"]["events"]["decoded"] == 0  # nobody asked for dicts
        runners[1].start()
        wait_until(lambda: runners[1].cursors["events"] == 10, message="the handler taking both read all 10")
        for stored, events in both.batches:  # one range, both ways
            assert decode_rows(stored) == events and [row[0] for row in stored] == [e["seq"] for e in events]
        assert log.stats()["cache"]["events"]["decoded"] == 10
    finally:
        for runner in runners:
            runner.stop(time.monotonic() + 5)
        log.close()


def test_a_handler_taking_on_trace_stored_gets_seq_and_body_and_nothing_is_decoded(tmp_path):
    log = CachedLog(SqliteLog(tmp_path), capacity=100)
    plugin = TakesStored()
    wakeup, (runner,) = runners_for(log, {"stored-traces": plugin}, batch_size=2)
    try:
        events = [make_event() for _ in range(3)]
        traces = [{"tenant": "default", "trace_id": e["trace_id"], "events": [e], "flags": [], "first_seq": i + 1}
                  for i, e in enumerate(events)]
        log.append("traces", traces)
        wakeup.advance("traces", 3)
        runner.start()
        wait_until(lambda: runner.cursors["traces"] == 3, message="three traces delivered")
        assert [seq for seq, _ in plugin.traces] == [1, 2, 3]
        assert log.stats()["cache"]["traces"]["decoded"] == 0
        assert [dict(decode(body), seq=seq) for seq, body in plugin.traces] == log.read("traces", 0, 3)  # what `trace` is
    finally:
        runner.stop(time.monotonic() + 5)
        log.close()


def test_a_trace_with_raw_events_is_stored_and_read_back_as_dicts(tmp_path):
    inner = SqliteLog(tmp_path)
    log = CachedLog(inner)
    try:
        event = make_event()
        inner.append_events([StampedEvent(event["id"], event["ts"], event["type"], event["trace_id"], 5, "p", "acme", wire.pack(event), None)])
        row = (1, 5, "p", "acme", wire.pack(event))
        record = {"tenant": "acme", "trace_id": event["trace_id"], "events": [msgspec.Raw(stamped_bytes(row))],
                  "first_seq": 1, "last_seq": 1, "flags": []}
        assert log.append("traces", [record]) == [1]
        cached, stored = log.read("traces", 0, 10), inner.read("traces", 0, 10)
        assert cached == stored
        assert stored[0]["events"] == [{**event, "seq": 1, "received_ns": 5, "publisher": "p", "tenant": "acme"}]
    finally:
        log.close()
