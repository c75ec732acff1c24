"""A bounded in-memory tail of each stream, shared by every consumer.

Why: each handler, the correlator and the feed read every event.  Reading
it back from SQLite and decoding its msgpack costs a few microseconds per
event *per consumer*.  So the newest records are kept here as they were
stored (an event's row: :mod:`secbus.log.stored`; a trace's or alert's
encoded body), and each is decoded into a dict at most once, when the first
reader asks for dicts (:meth:`CachedLog.read`); the correlator reads the
stored rows (:meth:`CachedLog.read_stored`) and never needs one.  A consumer
that lags further than the cache reads from the log as before.

The same dict objects are handed to every consumer: handlers must treat
events as read-only (docs/handlers.md).

Memory: each tail is bounded twice, by records (``capacity``) and by bytes
(``max_bytes``, counted as each record's encoded msgpack size: the body ingest
stored for an event, the packed record for a trace or alert).  The byte bound
is strict: after every append a tail holds at most ``max_bytes`` encoded bytes,
so a burst of large events cannot blow it up.  Decoded, the records take a
measured ~4-6x their encoded size (see docs/operations.md, Capacity), so the
default 8 MB per events tail is about 40 MB of RSS while handlers keep up,
and about its byte bound while only the correlator reads it.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Sequence

import msgspec

from .base import STAMP_BYTES, EventLog, StampedEvent
from .stored import StoredRow, decode_rows

DEFAULT_CAPACITY = 20_000
#: Encoded bytes per events tail (traces: a quarter, alerts: 1 MB).
DEFAULT_MAX_BYTES = 8 * 1024 * 1024

_decode = msgspec.msgpack.Decoder().decode


def _decode_records(raws: Sequence[tuple[int, bytes]]) -> list[dict]:
    """Trace and alert records from their ``(seq, body)``."""
    out = []
    for seq, body in raws:
        record = _decode(body)
        record["seq"] = seq
        out.append(record)
    return out


class _Tail:
    """The newest records of one stream, contiguous offsets from ``first``.

    Each record is kept as stored (``raws``: an event's row, a trace's or
    alert's ``(seq, body)``) and, once some reader asked for dicts, decoded
    (``records``; ``None`` until then): a range nobody reads as dicts is
    never decoded."""

    def __init__(self, capacity: int, max_bytes: int, decode: Callable[[list], list[dict]]):
        if capacity < 1 or max_bytes < 1:
            raise ValueError(f"cache: capacity and max_bytes must be positive, got {capacity} and {max_bytes}")
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.decode = decode
        self.raws: list = []
        self.records: list[dict | None] = []  # parallel to ``raws``
        self.sizes: list[int] = []  # encoded size of each record, parallel to ``raws``
        self.bytes = 0
        self.first = 0
        self.hits = 0
        self.misses = 0

    def add(self, first_seq: int, raws: list, records: list | None, sizes: list[int]) -> None:
        """Records ``first_seq, first_seq + 1, ...``; a gap (or overlap) starts the tail over."""
        if not raws:
            return
        if self.raws and first_seq != self.first + len(self.raws):
            self.raws, self.records, self.sizes, self.bytes = [], [], [], 0
        if not self.raws:
            self.first = first_seq
        self.raws.extend(raws)
        self.records.extend(records if records is not None else [None] * len(raws))
        self.sizes.extend(sizes)
        self.bytes += sum(sizes)
        drop = 0
        extra = len(self.raws) - self.capacity
        if extra > self.capacity // 4:  # trim by count in steps: amortised O(1) per record
            drop = extra
            self.bytes -= sum(self.sizes[:drop])
        while self.bytes > self.max_bytes:  # the byte bound is strict
            self.bytes -= self.sizes[drop]
            drop += 1
        if drop:
            del self.raws[:drop]
            del self.records[:drop]
            del self.sizes[:drop]
            self.first += drop

    def _range(self, after: int, limit: int) -> tuple[int, int] | None:
        start = after + 1 - self.first
        if 0 <= start < len(self.raws):
            self.hits += 1
            return start, min(start + limit, len(self.raws))
        self.misses += 1
        return None

    def get(self, after: int, limit: int) -> list[dict] | None:
        """Decoded records after ``after`` (decoding those no reader asked for yet), or None."""
        found = self._range(after, limit)
        return None if found is None else self._decoded(*found)

    def get_both(self, after: int, limit: int, decoded: bool) -> tuple[list, list[dict] | None] | None:
        """The stored records after ``after`` and, with ``decoded``, the same range decoded; or None."""
        found = self._range(after, limit)
        if found is None:
            return None
        start, end = found
        return self.raws[start:end], (self._decoded(start, end) if decoded else None)

    def _decoded(self, start: int, end: int) -> list[dict]:
        records = self.records
        missing = [i for i in range(start, end) if records[i] is None]
        if missing:
            for i, record in zip(missing, self.decode([self.raws[i] for i in missing])):
                records[i] = record
        return records[start:end]

    def get_raw(self, after: int, limit: int) -> list | None:
        found = self._range(after, limit)
        return None if found is None else self.raws[found[0] : found[1]]


class CachedLog(EventLog):
    """Wraps an :class:`EventLog`; appends feed the tails, reads try them first."""

    def __init__(self, inner: EventLog, capacity: int = DEFAULT_CAPACITY, max_bytes: int = DEFAULT_MAX_BYTES):
        self.inner = inner
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._tails = {
            "events": _Tail(capacity, max_bytes, decode_rows),
            "traces": _Tail(max(1, capacity // 4), max(1, max_bytes // 4), _decode_records),
            "alerts": _Tail(1000, min(max_bytes, 1024 * 1024), _decode_records),
        }
        self._lock = threading.Lock()

    def append_events(self, events: Sequence[StampedEvent]) -> list[int | None]:
        seqs = self.inner.append_events(events)
        rows: list[StoredRow] = []
        records: list[dict | None] = []
        for stamped, seq in zip(events, seqs):
            if seq is None:
                continue
            rows.append((seq, stamped.received_ns, stamped.publisher, stamped.tenant, stamped.body))
            event = stamped.event
            if event is not None:
                event["seq"] = seq
                event["received_ns"] = stamped.received_ns
                event["publisher"] = stamped.publisher
                event["tenant"] = stamped.tenant
            records.append(event)
        self.put_rows(rows, records)
        return seqs

    def append(self, stream, records, cursor=None, dedupe=False):
        seqs, bodies = self.inner.append_encoded(stream, records, cursor, dedupe)
        self.put_stored(stream, [(seq, body) for seq, body in zip(seqs, bodies) if seq is not None])
        return seqs

    def put_stored(self, stream: str, stored: list[tuple[int, bytes]]) -> None:
        """Add traces or alerts another process appended to the inner log, as ``(seq, body)``
        in seq order (the correlator process's traces: :mod:`secbus.consumers.correlator_process`)."""
        if stored:
            with self._lock:
                self._tails[stream].add(stored[0][0], stored, None, [len(body) for _, body in stored])

    def fill_events(self, after: int, limit: int) -> int:
        """Read events after ``after`` from the inner log into the tail (a reader process
        following another process's writes); return the last offset read."""
        rows = self.inner.read_stored(after, limit)
        self.put_rows(rows)
        return rows[-1][0] if rows else after

    def put_rows(self, rows: list[StoredRow], records: list[dict | None] | None = None) -> None:
        """Add stored events (consecutive seqs; ``records``: their dicts where the caller has
        them) to the tail: what ingest handed over (:mod:`secbus.log.committed`) or :meth:`fill_events` read."""
        if rows:
            with self._lock:
                self._tails["events"].add(rows[0][0], rows, records, [len(row[4]) + STAMP_BYTES for row in rows])

    def read(self, stream: str, after: int, limit: int) -> list[dict]:
        with self._lock:
            tail = self._tails.get(stream)
            found = tail.get(after, limit) if tail is not None else None
        return found if found is not None else self.inner.read(stream, after, limit)

    def read_stored(self, after: int, limit: int) -> list[StoredRow]:
        with self._lock:
            found = self._tails["events"].get_raw(after, limit)
        return found if found is not None else self.inner.read_stored(after, limit)

    def read_records(self, stream: str, after: int, limit: int, dicts: bool = True) -> tuple[list[tuple[int, bytes]], list[dict] | None]:
        with self._lock:
            found = self._tails[stream].get_both(after, limit, dicts)
        return found if found is not None else self.inner.read_records(stream, after, limit, dicts)

    def read_events(self, after: int, limit: int, dicts: bool = True) -> tuple[list[StoredRow], list[dict] | None]:
        with self._lock:
            found = self._tails["events"].get_both(after, limit, dicts)
        return found if found is not None else self.inner.read_events(after, limit, dicts)

    # --- everything else is the inner log's -------------------------------
    def head(self, stream: str) -> int:
        return self.inner.head(stream)

    def first(self, stream: str) -> int:
        return self.inner.first(stream)

    def trace(self, tenant, trace_id, open_after=0):
        return self.inner.trace(tenant, trace_id, open_after)

    def query(self, tenant=None, type_prefix=None, since_ns=None, until_ns=None, limit=1000, outcome=None, newest=False,
              fields=None, after_seq=0):
        return self.inner.query(tenant, type_prefix, since_ns, until_ns, limit, outcome, newest, fields, after_seq)

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
            out["cache"] = {s: {"records": len(t.raws), "decoded": sum(r is not None for r in t.records), "capacity": t.capacity, "bytes": t.bytes, "max_bytes": t.max_bytes, "hits": t.hits, "misses": t.misses} for s, t in self._tails.items()}
        return out

    def close(self) -> None:
        self.inner.close()

