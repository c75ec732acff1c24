"""How ``state.db`` keeps closed traces: slim bodies and a trace-id index built in bulk.

Why: stored the obvious way (each trace with its events inline, a B-tree
index on the random ``trace_id``) a closed trace cost ~26 us of CPU to
store once 400k traces were in (micro-benchmark, benchmarks/FINDINGS.md
section 8): more than ingest spends on the trace's four events.  Each insert
dirtied a random index page and wrote every event a second time.  So:

* **Slim bodies.** The stored body is the trace record without ``events``,
  with ``event_seqs`` instead: the events' offsets in the events stream, in
  the trace's order.  The events are in ``events.db`` already; readers of the
  log get them back (:func:`resolve`).  An event that retention deleted
  before its trace is missing from the record (``event_count`` still says
  how many the trace had).  Records stored before this format keep their
  inline events and read as before.
* **An index built in bulk.** ``trace_index`` maps a 64-bit key (the first
  16 hex digits of the trace id) to the trace's offset.  It is not written
  per trace: every :data:`INDEX_BATCH` traces, the writer adds the keys of
  the traces stored since, sorted, in one statement (:func:`index_pending`),
  and moves the watermark ``trace_indexed`` in the same transaction.  A
  lookup reads the index up to the watermark and scans the few traces past
  it (:func:`lookup`).  Keys of traces retention deleted are pruned in
  bulk too (:func:`prune`); until then a lookup's join skips them.

Together: ~5 us per trace in the same micro-benchmark.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any, Callable, Sequence

from .transaction import immediate

import msgspec

#: traces stored between two bulk index passes (the longest tail a lookup scans)
INDEX_BATCH = 20_000
_WATERMARK = "trace_indexed"
_SEQS_PER_QUERY = 500  # "IN (...)" parameters per query
_PASS_ROWS = 200_000  # traces per sorted insert when indexing (a migration may index millions)

SCHEMA = """
CREATE TABLE IF NOT EXISTS trace_index (
    trace_key INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (trace_key, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_INDEXED = f"coalesce((SELECT value FROM state_meta WHERE key = '{_WATERMARK}'), 0)"

#: traces with this id (parameters: key, trace_id, trace_id), indexed or in the tail past the watermark
_LOOKUP_SQL = (
    "SELECT seq, body FROM traces WHERE seq IN (SELECT seq FROM trace_index WHERE trace_key = ?) AND trace_id = ?"
    f" UNION ALL SELECT seq, body FROM traces WHERE seq > {_INDEXED} AND trace_id = ?"
)


class _Seq(msgspec.Struct):
    seq: int


_event_seq = msgspec.msgpack.Decoder(_Seq).decode


def trace_key(trace_id: str) -> int:
    """The index key of a trace id: its first 64 bits as a signed integer (SQLite's INTEGER)."""
    try:
        return int(trace_id[:16], 16) - (1 << 63)
    except (TypeError, ValueError):
        return 0  # not hex (an id from before validation was strict): stored and found under key 0


def lookup(st: sqlite3.Connection, trace_id: str) -> list[tuple[int, bytes]]:
    """``(seq, body)`` of every stored trace with this id."""
    return st.execute(_LOOKUP_SQL, (trace_key(trace_id), trace_id, trace_id)).fetchall()


def slim(record: dict) -> dict:
    """The stored form of a closed trace: the record without its events, with their offsets
    (``event_seqs`` as the correlator gives them, else read from the events)."""
    out = {}
    for key, value in record.items():
        if key == "events":  # in its place, so a record reads back with its keys in order
            given = record.get("event_seqs")
            out["event_seqs"] = given if given is not None else [_seq_of(e) for e in value or ()]
        elif key not in ("seq", "event_seqs"):
            out[key] = value
    return out


def _seq_of(event: Any) -> int | None:
    if isinstance(event, msgspec.Raw):
        return _event_seq(event).seq
    return event.get("seq") if isinstance(event, dict) else None


def index_pending(st: sqlite3.Connection, head: int) -> None:
    """Index the traces stored past the watermark, up to ``head`` (inside the caller's
    transaction), :data:`_PASS_ROWS` at a time so that a large migrated log is indexed in
    bounded memory."""
    (indexed,) = st.execute(f"SELECT {_INDEXED}").fetchone()
    for start in range(indexed, head, _PASS_ROWS):
        upto = min(head, start + _PASS_ROWS)
        rows = st.execute("SELECT trace_id, seq FROM traces WHERE seq > ? AND seq <= ?", (start, upto)).fetchall()
        st.executemany("INSERT OR IGNORE INTO trace_index VALUES (?, ?)", sorted((trace_key(t), seq) for t, seq in rows))
    if head > indexed:
        st.execute("INSERT OR REPLACE INTO state_meta VALUES (?, ?)", (_WATERMARK, head))


def unindexed(st: sqlite3.Connection, head: int) -> int:
    (indexed,) = st.execute(f"SELECT {_INDEXED}").fetchone()
    return head - indexed


def prune(st: sqlite3.Connection) -> int:
    """Drop the keys of traces retention deleted (a scan of the index: call it now and then)."""
    return st.execute("DELETE FROM trace_index WHERE seq < (SELECT coalesce(min(seq), 1 << 62) FROM traces)").rowcount


def migrate(st: sqlite3.Connection) -> None:
    """A log from before the bulk index: index what it holds, then drop the per-trace index."""
    if st.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'traces_trace'").fetchone() is None:
        return
    with immediate(st):  # another process opening the same log may have migrated it meanwhile: then both are no-ops
        (head,) = st.execute("SELECT coalesce(max(seq), 0) FROM traces").fetchone()
        logging.getLogger("secbus.log").info("event log: indexing %d stored traces in bulk (once, for the new trace index)", head)
        index_pending(st, head)
        st.execute("DROP INDEX IF EXISTS traces_trace")


def resolve(records: Sequence[dict], fetch: Callable[[list[int]], dict[int, dict]]) -> list[dict]:
    """The records with their events back in place of ``event_seqs`` (new dicts where changed).

    ``fetch(seqs)`` returns the stored events by offset; one call covers every
    record, in chunks of :data:`_SEQS_PER_QUERY` offsets."""
    wanted = [seq for r in records if "events" not in r for seq in r.get("event_seqs") or () if seq is not None]
    found: dict[int, dict] = {}
    for start in range(0, len(wanted), _SEQS_PER_QUERY):
        found.update(fetch(wanted[start : start + _SEQS_PER_QUERY]))
    return [_with_events(r, found) if "event_seqs" in r else r for r in records]


def _with_events(record: dict, found: dict[int, dict]) -> dict:
    """``record`` with ``event_seqs`` replaced, in its place, by the events found (a record
    that kept its events as well, from a log that stores them whole, keeps those)."""
    out = {}
    for key, value in record.items():
        if key != "event_seqs":
            out[key] = value
        elif "events" not in record:
            out["events"] = [found[seq] for seq in value or () if seq in found]
    return out
