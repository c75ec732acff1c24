"""A bounded in-memory tail of each stream, shared by every consumer.

Why: each handler, the correlator and the feed read every event.  Reading
it back from SQLite and decoding its msgpack costs a few microseconds per
event *per consumer*, and all of them share one interpreter lock with ingest.
Ingest already holds each new event as a validated dict (and the correlator
each closed trace), so after the commit the newest ones are kept here; a consumer that keeps up reads them from
memory, one that lags further than the cache reads from the log as before.

The same dict objects are handed to every consumer: handlers must treat
events as read-only (docs/handlers.md).

Memory: each tail is bounded twice, by records (``capacity``) and by bytes
(``max_bytes``, counted as each record's encoded msgpack size: the body ingest
stored for an event, the packed record for a trace or alert).  The byte bound
is strict: after every append a tail holds at most ``max_bytes`` encoded bytes,
so a burst of large events cannot blow it up.  As decoded Python dicts the
records take a measured ~4-6x their encoded size (see docs/operations.md,
Capacity), so the default 8 MB per events tail is about 40 MB of RSS.
"""

from __future__ import annotations

import threading
from typing import Any, Sequence


from .base import STAMP_BYTES, EventLog, StampedEvent

DEFAULT_CAPACITY = 20_000
#: Encoded bytes per events tail (traces: a quarter, alerts: 1 MB).
DEFAULT_MAX_BYTES = 8 * 1024 * 1024


class _Tail:
    """The newest records of one stream, contiguous offsets from ``first``."""

    def __init__(self, capacity: int, max_bytes: int):
        if capacity < 1 or max_bytes < 1:
            raise ValueError(f"cache: capacity and max_bytes must be positive, got {capacity} and {max_bytes}")
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.records: list[dict] = []
        self.sizes: list[int] = []  # encoded size of each record, parallel to ``records``
        self.bytes = 0
        self.first = 0
        self.hits = 0
        self.misses = 0

    def add(self, fresh: list[dict] | None, sizes: list[int] | None = None) -> None:
        if fresh is None or (fresh and self.records and fresh[0]["seq"] != self.first + len(self.records)):
            self.records, self.sizes, self.bytes = [], [], 0  # not contiguous: start over
            fresh = fresh or []
        if fresh and not self.records:
            self.first = fresh[0]["seq"]
        sizes = sizes if sizes is not None else [STAMP_BYTES] * len(fresh)
        self.records.extend(fresh)
        self.sizes.extend(sizes)
        self.bytes += sum(sizes)
        drop = 0
        extra = len(self.records) - self.capacity
        if extra > self.capacity // 4:  # trim by count in steps: amortised O(1) per record
            drop = extra
            self.bytes -= sum(self.sizes[:drop])
        while self.bytes > self.max_bytes:  # the byte bound is strict
            self.bytes -= self.sizes[drop]
            drop += 1
        if drop:
            del self.records[:drop]
            del self.sizes[:drop]
            self.first += drop

    def get(self, after: int, limit: int) -> list[dict] | None:
        start = after + 1 - self.first
        if 0 <= start < len(self.records):
            self.hits += 1
            return self.records[start : start + limit]
        self.misses += 1
        return None


class CachedLog(EventLog):
    """Wraps an :class:`EventLog`; appends feed the tails, reads try them first."""

    def __init__(self, inner: EventLog, capacity: int = DEFAULT_CAPACITY, max_bytes: int = DEFAULT_MAX_BYTES):
        self.inner = inner
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._tails = {
            "events": _Tail(capacity, max_bytes),
            "traces": _Tail(max(1, capacity // 4), max(1, max_bytes // 4)),
            "alerts": _Tail(1000, min(max_bytes, 1024 * 1024)),
        }
        self._lock = threading.Lock()

    def append_events(self, events: Sequence[StampedEvent]) -> list[int | None]:
        seqs = self.inner.append_events(events)
        fresh: list[dict] | None = []
        sizes: list[int] = []
        for stamped, seq in zip(events, seqs):
            if seq is None:
                continue
            if stamped.event is None:
                fresh = None
                break
            event = stamped.event
            event["seq"] = seq
            event["received_ns"] = stamped.received_ns
            event["publisher"] = stamped.publisher
            event["tenant"] = stamped.tenant
            fresh.append(event)
            sizes.append(len(stamped.body) + STAMP_BYTES)
        with self._lock:
            self._tails["events"].add(fresh, sizes)
        return seqs

    def append(self, stream, records, cursor=None, dedupe=False):
        seqs, stored = self.inner.append_sized(stream, records, cursor, dedupe)
        fresh = []
        sizes = []
        for record, seq, size in zip(records, seqs, stored):
            if seq is not None:
                record["seq"] = seq  # the caller's fresh dict (a closed trace, an alert copy)
                fresh.append(record)
                sizes.append(size)
        with self._lock:
            self._tails[stream].add(fresh, sizes)
        return seqs

    def fill(self, stream: str, after: int, limit: int) -> int:
        """Read records after ``after`` from the inner log into the tail (a reader
        process following another process's writes); return the last offset read."""
        records, sizes = self.inner.read_sized(stream, after, limit)
        with self._lock:
            self._tails[stream].add(records, sizes)
        return records[-1]["seq"] if records else after

    def put(self, stream: str, records: list[dict], sizes: list[int]) -> None:
        """Add records the caller already has (events ingest handed over, see
        :mod:`secbus.log.committed`) to the tail, as :meth:`fill` would."""
        with self._lock:
            self._tails[stream].add(records, sizes)

    def read(self, stream: str, after: int, limit: int) -> list[dict]:
        with self._lock:
            tail = self._tails.get(stream)
            found = tail.get(after, limit) if tail is not None else None
        return found if found is not None else self.inner.read(stream, after, limit)

    # --- everything else is the inner log's -------------------------------
    def head(self, stream: str) -> int:
        return self.inner.head(stream)

    def first(self, stream: str) -> int:
        return self.inner.first(stream)

    def trace(self, tenant, trace_id, open_after=0):
        return self.inner.trace(tenant, trace_id, open_after)

    def query(self, tenant=None, type_prefix=None, since_ns=None, until_ns=None, limit=1000):
        return self.inner.query(tenant, type_prefix, since_ns, until_ns, limit)

    def get_cursor(self, consumer, stream):
        return self.inner.get_cursor(consumer, stream)

    def set_cursor(self, consumer, stream, offset):
        return self.inner.set_cursor(consumer, stream, offset)

    def cursors(self):
        return self.inner.cursors()

    def retain(self, max_age_ns, max_bytes, floor, now_ns, chunk=5000):
        return self.inner.retain(max_age_ns, max_bytes, floor, now_ns, chunk)

    def checkpoint(self) -> None:
        self.inner.checkpoint()

    def stats(self) -> dict[str, Any]:
        out = self.inner.stats()
        with self._lock:
            out["cache"] = {s: {"records": len(t.records), "capacity": t.capacity, "bytes": t.bytes, "max_bytes": t.max_bytes, "hits": t.hits, "misses": t.misses} for s, t in self._tails.items()}
        return out

    def close(self) -> None:
        self.inner.close()

