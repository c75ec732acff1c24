"""The event log interface: three append-only streams with offsets and named cursors.

Streams:

* ``events``: validated, stamped events, appended by ingest only;
* ``traces``: closed correlated traces, appended by the correlator runner;
* ``alerts``: alerts raised by handlers through ``app.publish_alert``.

Every record has an offset (``seq``) that is strictly increasing within its
stream, starting at 1.  A consumer (a handler, the correlator, the feed) keeps
a cursor per stream: the last offset it has handled, 0 before the first.
Ingest, the consumers and the CLI use nothing but this interface, so a
distributed log can replace the embedded SQLite one without touching them.

Implementations must let one writer per stream and many readers work at once
from different threads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import msgspec

from .stored import decode_rows

_encode = msgspec.msgpack.Encoder().encode


def _body(record: dict) -> bytes:
    """A trace's or alert's msgpack as stored: the record without its ``seq``."""
    return _encode({k: v for k, v in record.items() if k != "seq"})

STREAMS = ("events", "traces", "alerts")
#: What the stamped columns (seq, received_ns, publisher, tenant) add to an event's stored body.
STAMP_BYTES = 64


@dataclass(slots=True)
class StampedEvent:
    """One validated event ready to append: its encoded body and the stamped columns.

    ``body`` is the msgpack of the event *without* the broker's fields;
    readers add ``seq``, ``received_ns``, ``publisher`` and ``tenant``.
    ``event`` is the decoded, validated dict when ingest has it (the read
    cache hands it to consumers without decoding ``body`` again)."""

    id: str
    ts: int
    type: str
    trace_id: str
    received_ns: int
    publisher: str
    tenant: str
    body: bytes
    event: dict | None = None


class EventLog(ABC):
    """What the broker needs from a durable log (see the module docstring)."""

    # --- writing -----------------------------------------------------------
    @abstractmethod
    def append_events(self, events: Sequence[StampedEvent]) -> list[int | None]:
        """Append in one durable transaction; return each event's ``seq``, or
        ``None`` for an event whose ``id`` the log (or this call) already holds.
        When this returns, every new event is committed."""

    @abstractmethod
    def append(self, stream: str, records: Sequence[dict], cursor: tuple[str, int] | None = None, dedupe: bool = False) -> list[int | None]:
        """Append records to ``traces`` or ``alerts`` in one transaction; return
        their offsets.  With ``dedupe``, a trace already stored (same tenant,
        trace_id and ``first_seq``) is skipped and its offset is ``None``.
        ``cursor=(consumer, offset)`` sets that consumer's ``events`` cursor in
        the same transaction (the correlator uses it)."""

    # --- reading -----------------------------------------------------------
    def append_encoded(self, stream: str, records: Sequence[dict], cursor: tuple[str, int] | None = None, dedupe: bool = False) -> tuple[list[int | None], list[bytes]]:
        """As :meth:`append`, plus each record's stored msgpack without ``seq`` (the tail
        cache keeps it and decodes it for readers).  Records may hold ``msgspec.Raw``
        values (a closed trace's events), which go into the encoding as they are."""
        return self.append(stream, records, cursor, dedupe), [_body(r) for r in records]

    @abstractmethod
    def read(self, stream: str, after: int, limit: int) -> list[dict]:
        """Up to ``limit`` records with offset > ``after``, in log order, each with ``seq``."""

    def read_stored(self, after: int, limit: int) -> list[tuple]:
        """As ``read("events", ...)``, as stored rows ``(seq, received_ns, publisher, tenant,
        body)`` (:mod:`secbus.log.stored`): ``body`` is the event's msgpack without the
        stamped fields.  This default encodes what :meth:`read` returns."""
        out = []
        for event in self.read("events", after, limit):
            body = {k: v for k, v in event.items() if k not in ("seq", "received_ns", "publisher", "tenant")}
            out.append((event["seq"], event["received_ns"], event["publisher"], event["tenant"], _encode(body)))
        return out

    def read_records(self, stream: str, after: int, limit: int, dicts: bool = True) -> tuple[list[tuple[int, bytes]], list[dict] | None]:
        """Traces or alerts of one range as ``(seq, body)`` (``body``: the record's msgpack
        without ``seq``) and, with ``dicts``, as ``read`` gives them: what ``on_trace(trace,
        stored)`` is given.  This default encodes what :meth:`read` returns."""
        records = self.read(stream, after, limit)
        stored = [(r["seq"], _body(r)) for r in records]
        return stored, (records if dicts else None)

    def read_events(self, after: int, limit: int, dicts: bool = True) -> tuple[list[tuple], list[dict] | None]:
        """The next events of one range as stored rows and, with ``dicts``, as the dicts
        ``read("events", ...)`` gives: what a handler's ``on_events(events, stored)`` is given."""
        rows = self.read_stored(after, limit)
        return rows, (decode_rows(rows) if dicts else None)

    @abstractmethod
    def head(self, stream: str) -> int:
        """The last offset written to ``stream`` (0 when empty)."""

    @abstractmethod
    def first(self, stream: str) -> int:
        """The oldest offset still retained (head + 1 when empty)."""

    @abstractmethod
    def trace(self, tenant: str | None, trace_id: str, open_after: int = 0) -> list[dict]:
        """Every retained event of a trace, in time order (``tenant=None``: any tenant).

        Closed traces are found through the indexed traces stream; events of
        still-open traces by scanning events with offset > ``open_after``
        (the correlator's cursor), a bounded range."""

    @abstractmethod
    def query(
        self,
        tenant: str | None = None,
        type_prefix: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int = 1000,
        outcome: str | None = None,
        newest: bool = False,
        fields: Mapping[str, str] | None = None,
        after_seq: int = 0,
    ) -> list[dict]:
        """Events in log order matching every filter given (time range on ``ts``); with
        ``newest``, the last ``limit`` matches, the most recent first.  ``fields`` are fields
        of the body that must equal the given text (``{"actor.user": "alice"}``, see
        :mod:`secbus.log.fields`); ``outcome`` is short for ``fields={"outcome": ...}``.
        Only events with ``seq`` above ``after_seq``: the next page of a long listing."""

    # --- cursors -----------------------------------------------------------
    @abstractmethod
    def get_cursor(self, consumer: str, stream: str) -> int | None:
        """The stored cursor, or ``None`` if this consumer never stored one."""

    @abstractmethod
    def set_cursor(self, consumer: str, stream: str, offset: int) -> None:
        """Durably store a cursor."""

    @abstractmethod
    def cursors(self) -> dict[tuple[str, str], int]:
        """Every stored cursor."""

    # --- upkeep ------------------------------------------------------------
    @abstractmethod
    def retain(self, max_age_ns: int, max_bytes: int, floor: dict[str, int], now_ns: int, chunk: int = 5000) -> int:
        """Delete up to ``chunk`` of the oldest records past the age or size
        bound, never a record with offset > ``floor[stream]`` (the slowest
        ``block`` cursor). Return how many were deleted (call again while > 0)."""

    def checkpoint(self) -> None:
        """Background upkeep the broker calls about once a second from its own
        thread (SQLite: move the WAL into the database off the ingest path)."""

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """Size on disk and, per stream, ``head``, ``first`` and ``count``."""

    @abstractmethod
    def close(self) -> None:
        """Release every connection; later calls are errors."""


def merge_trace_events(parts: Iterable[Iterable[dict]]) -> list[dict]:
    """Union of event lists by ``id``, sorted by (ts, seq)."""
    seen: dict[str, dict] = {}
    for part in parts:
        for event in part:
            seen.setdefault(event["id"], event)
    return sorted(seen.values(), key=lambda e: (e["ts"], e.get("seq", 0)))
