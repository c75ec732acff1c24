"""Trace correlation: group committed events by (tenant, trace_id) into traces.

Pure logic, no I/O and no clock of its own: the correlator runner feeds it
events in log order and tells it the time, which keeps it deterministic in
tests and on replay after a restart.

The policy follows the OpenTelemetry Collector's groupbytrace processor:
a trace closes once no event has arrived for ``trace_idle_ns``; at most
``max_open_traces`` stay open, and when one more would open, the least
recently active is closed early and flagged ``evicted`` (memory stays
bounded whatever the traffic). A trace keeps at most ``max_trace_events``
events (flag ``truncated``, with the full count in ``event_count``).
An event whose trace closed recently opens a new trace flagged ``late``;
"recently" is remembered for the last ``remember_closed`` traces.

Closed traces carry their events in time order, the platforms, services
and outcome counts, the first and last event timestamps, and the flags
``cross_platform`` (two or more platforms), ``mixed_outcomes`` (two or more
outcomes), ``evicted``, ``late`` and ``truncated``.

Memory: an open trace keeps its events as msgpack bytes (about the event's
encoded size, ~0.5 KB for a typical event) and rebuilds them into dicts only
when it closes.  Kept as dicts they cost ~3 KB each and, being the same
objects the log's tail cache hands out, kept that cache's evicted events
alive: with 20 000 open traces that was most of the broker's RSS.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import msgspec

#: Open traces keep their events as msgpack bytes (memory); msgspec's codec is
#: about twice as fast as msgpack's both ways on these small maps.
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode

TraceKey = tuple[str, str]


# Memory per open trace (tens of thousands are open at once): the platforms and services of a
# trace are nearly always one each, so a trace keeps that one value and makes a set only when
# a second appears (a set is ~216 bytes); and the names, which every event decodes anew, are
# shared across traces (bounded: names beyond the first few thousand stay per trace).
_SHARED_MAX = 4096
_names: dict[str, str] = {}


def _shared(name: str) -> str:
    kept = _names.get(name)
    if kept is None:
        if len(_names) >= _SHARED_MAX:
            return name
        kept = _names[name] = name
    return kept


def _joined(kept: str | set[str] | None, value: str) -> str | set[str]:
    """``kept`` (nothing, one value, or a set of two or more) with ``value`` added."""
    if kept is None or kept == value:
        return value
    if type(kept) is set:
        kept.add(value)
        return kept
    return {kept, value}


def _members(kept: str | set[str] | None) -> list[str]:
    return [] if kept is None else sorted(kept) if type(kept) is set else [kept]


def _time_order(kept: tuple) -> tuple[int, int]:
    return kept[0], kept[1]  # (ts, seq): never compare the bytes


@dataclass(slots=True)  # tens of thousands of these are open at once: no __dict__ each
class _OpenTrace:
    tenant: str
    trace_id: str
    late: bool
    last_seen_ns: int
    events: list[tuple] = field(default_factory=list)  # (ts, seq, msgpack) of each kept event
    event_count: int = 0
    platforms: str | set[str] | None = None  # one value until a second appears (see _joined)
    services: str | set[str] | None = None
    outcomes: dict[str, int] = field(default_factory=dict)
    first_seq: int | None = None
    last_seq: int | None = None
    first_ts: int | None = None
    last_ts: int | None = None


class Correlator:
    """Open traces in memory, closed by idleness, eviction or :meth:`close_all`."""

    def __init__(
        self,
        trace_idle_ns: int,
        max_open_traces: int = 10_000,
        max_trace_events: int = 1_000,
        remember_closed: int | None = None,
        raw_events: bool = False,
    ) -> None:
        if trace_idle_ns <= 0:
            raise ValueError(f"trace_idle: must be positive, got {trace_idle_ns} ns")
        if max_open_traces < 1:
            raise ValueError(f"max_open_traces: must be at least 1, got {max_open_traces}")
        if max_trace_events < 1:
            raise ValueError(f"max_trace_events: must be at least 1, got {max_trace_events}")
        self.trace_idle_ns = trace_idle_ns
        self.max_open_traces = max_open_traces
        self.max_trace_events = max_trace_events
        self.remember_closed = remember_closed if remember_closed is not None else 4 * max_open_traces
        #: closed traces carry their events as ``msgspec.Raw`` (encoded once, never decoded here)
        self.raw_events = raw_events
        self._open: OrderedDict[TraceKey, _OpenTrace] = OrderedDict()  # least recently active first
        self._closed: OrderedDict[TraceKey, None] = OrderedDict()
        # Open traces in the order their first event arrived (log order), so the
        # oldest offset still held is the first entry: O(1) for every batch.
        self._by_first_seq: OrderedDict[TraceKey, int] = OrderedDict()
        self.evicted = 0
        self.late = 0

    @property
    def open_count(self) -> int:
        return len(self._open)

    def oldest_open_seq(self) -> int | None:
        """The smallest log offset held by an open trace (where a restart must resume)."""
        for first_seq in self._by_first_seq.values():
            return first_seq
        return None

    def shift_idle(self, delta_ns: int, now_ns: int) -> None:
        """Move every open trace's idle clock forward by ``delta_ns`` (capped at
        ``now_ns``): after a restart, the broker's downtime must not count as
        idleness, or every trace open at the crash would close at once."""
        for trace in self._open.values():
            trace.last_seen_ns = min(trace.last_seen_ns + delta_ns, now_ns)

    def add(self, event: dict) -> list[dict]:
        """Add one committed event; return the traces this closed early (evictions)."""
        source = event.get("source") or {}
        return self.add_encoded(event.get("tenant", "default"), event["trace_id"], event.get("received_ns") or event["ts"],
                                event.get("seq"), event["ts"], source.get("platform"), source.get("service"),
                                event.get("outcome", "unknown"), _encode(event))

    def add_encoded(self, tenant: str, trace_id: str, now: int, seq: int | None, ts: int,
                    platform: str | None, service: str | None, outcome: str, encoded: bytes) -> list[dict]:
        """:meth:`add` for an event given as its fields and its msgpack (``now``: its ``received_ns``)."""
        key = (tenant, trace_id)
        trace = self._open.get(key)
        closed: list[dict] = []
        if trace is None:
            if len(self._open) >= self.max_open_traces:
                _, oldest = self._open.popitem(last=False)
                self.evicted += 1
                closed.append(self._close(oldest, evicted=True))
            late = key in self._closed
            if late:
                self.late += 1
            trace = _OpenTrace(tenant=tenant, trace_id=trace_id, late=late, last_seen_ns=now)
            self._open[key] = trace
        else:
            self._open.move_to_end(key)
        trace.last_seen_ns = max(trace.last_seen_ns, now)
        trace.event_count += 1
        if len(trace.events) < self.max_trace_events:
            trace.events.append((ts, seq or 0, encoded))
        if platform:
            trace.platforms = _joined(trace.platforms, _shared(platform))
        if service:
            trace.services = _joined(trace.services, _shared(service))
        outcome = _shared(outcome)
        trace.outcomes[outcome] = trace.outcomes.get(outcome, 0) + 1
        if seq is not None:
            if trace.first_seq is None:
                self._by_first_seq[key] = seq
            trace.first_seq = seq if trace.first_seq is None else min(trace.first_seq, seq)
            trace.last_seq = seq if trace.last_seq is None else max(trace.last_seq, seq)
        trace.first_ts = ts if trace.first_ts is None else min(trace.first_ts, ts)
        trace.last_ts = ts if trace.last_ts is None else max(trace.last_ts, ts)
        return closed

    def expire(self, now_ns: int) -> list[dict]:
        """Close every trace idle for ``trace_idle_ns`` or more at ``now_ns``."""
        closed = []
        while self._open:
            key, trace = next(iter(self._open.items()))
            if trace.last_seen_ns + self.trace_idle_ns > now_ns:
                break
            del self._open[key]
            closed.append(self._close(trace))
        return closed

    def close_all(self) -> list[dict]:
        """Close every open trace now (for a final flush)."""
        closed = [self._close(trace) for trace in list(self._open.values())]
        self._open.clear()
        return closed

    def _close(self, trace: _OpenTrace, evicted: bool = False) -> dict:
        key = (trace.tenant, trace.trace_id)
        self._by_first_seq.pop(key, None)
        self._closed[key] = None
        self._closed.move_to_end(key)
        while len(self._closed) > self.remember_closed:
            self._closed.popitem(last=False)
        flags = []
        if type(trace.platforms) is set:  # two or more
            flags.append("cross_platform")
        if evicted:
            flags.append("evicted")
        if trace.late:
            flags.append("late")
        if len(trace.outcomes) > 1:
            flags.append("mixed_outcomes")
        if trace.event_count > len(trace.events):
            flags.append("truncated")
        ordered = sorted(trace.events, key=_time_order)
        events = [msgspec.Raw(raw) for _, _, raw in ordered] if self.raw_events else [_decode(raw) for _, _, raw in ordered]
        record = {
            "tenant": trace.tenant,
            "trace_id": trace.trace_id,
            "events": events,
            "event_count": trace.event_count,
            "platforms": _members(trace.platforms),
            "services": _members(trace.services),
            "outcomes": dict(sorted(trace.outcomes.items())),
            "first_ts": trace.first_ts,
            "last_ts": trace.last_ts,
            "first_seq": trace.first_seq,
            "last_seq": trace.last_seq,
            "flags": flags,
        }
        if self.raw_events:
            record["event_seqs"] = [seq for _, seq, _ in ordered]  # spares the log a decode (secbus.log.traces)
        return record
