"""The default event log: stdlib sqlite3 in WAL mode, two database files.

* ``events.db`` holds the events stream and is written by one thread only
  (ingest), so the hot path never waits for another writer's lock.
* ``state.db`` holds the low-volume streams (``traces``, ``alerts``) and every
  consumer's cursors, written by the runners.

Why these choices (numbers from ARCHITECTURE.md "Measured facts"):

* WAL lets readers (handler runners, ``secbus trace``) run while ingest
  writes.  ``synchronous=NORMAL`` (the default ``durability = "normal"``) means
  a committed transaction is in the OS before ``append_events`` returns:
  durable against a crash of the broker process (``kill -9``), not against
  power loss.  ``durability = "fsync"`` uses ``synchronous=FULL``: every
  commit is fsynced before the ACK, durable against power loss, slower.
* Traces are stored slim (their events' offsets, not the events) and found
  by a trace-id index built in bulk every 20,000 traces, not per insert
  (:mod:`secbus.log.traces`: ~26 -> ~5 us per stored trace).  A replay after
  a restart may close a trace again; the correlator then asks :meth:`append`
  to ``dedupe`` (the index brought up to date, one probe per replayed trace)
  instead of paying a random-key UNIQUE index on every insert.
* Events are keyed by ``seq`` (the rowid, so appends go to the end of the
  B-tree) with one UNIQUE index on the event id.  UUIDv7 ids are time ordered,
  so that index also appends.  There is deliberately *no* index on
  ``trace_id``: a random-key index on the ingest path costs a factor of three.
  Trace lookups go through the ``traces`` table (indexed, written behind the
  correlator) plus a scan of the events the correlator has not closed yet.
* Deduplication is optimistic: a batch is inserted without looking its ids
  up first, and only when the UNIQUE index refuses one (a re-sent batch, a
  rare event) is the transaction rolled back and the batch appended the
  careful way (ids looked up, duplicates skipped).  Looking first was ~8% of
  the ingest thread.
* Checkpoints (copying the WAL into the database, with its fsyncs) are
  taken by :meth:`SqliteLog.checkpoint`, which the broker calls from a
  background thread, not by the committing ingest thread: SQLite's automatic
  checkpoint would otherwise stall an ACK now and then.  It is switched off
  on ``events.db`` only for a log opened with ``background_checkpoint``.
* Each event is stored as its msgpack ``body`` plus the columns
  queries need; readers rebuild the dict and add the stamped fields.
* ``events.db`` is created with 16 KiB pages (``EVENTS_PAGE_SIZE``; SQLite's
  default is 4 KiB): SQLite writes each WAL frame as two ``pwrite`` calls at
  an offset that is not block aligned, and with small pages a commit of a
  few hundred events was a few hundred such writes, a quarter of the ingest
  thread's time in the kernel.  Durable ingest, 2 publishers x batches of
  100, A/B alternated 4 times: 124.5k -> 131k events/s (64 KiB pages: the
  same, with more rewritten per commit); a second A/B, 3 times: 112k -> 115k,
  within the noise.  Never measured worse.  A log created with other pages
  keeps them (SQLite cannot change it in WAL mode).
* Ranges of events are read as *one* aggregate row (the bodies back to back
  and a JSON array of the other columns), not a row per event: ``sqlite3``
  lets the interpreter lock go around every row it steps, and with other
  threads busy (the consumer process's handlers) taking it back costs a thread
  switch each time: reading 2,000 events took ~110 us of wall time and ~18 us
  of CPU per event with two busy threads, 14 and 10 us this way (7 vs 6 us
  with no other thread).  Without SQLite's JSON functions, rows are read one
  by one as before.

Connections are per thread (sqlite3 objects must not be shared between
threads that use them at once); :meth:`SqliteLog.close` closes them all.
"""

from __future__ import annotations

import functools
import logging
import operator
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import msgspec

from . import traces as trace_store
from .base import STREAMS, EventLog, StampedEvent, merge_trace_events
from .fields import FieldMatch
from .stored import StoredRow, decode_rows
from .transaction import immediate

log = logging.getLogger("secbus.log")

EVENTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    received_ns INTEGER NOT NULL,
    publisher TEXT NOT NULL,
    tenant TEXT NOT NULL,
    ts INTEGER NOT NULL,
    type TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_id ON events (id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

STATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS cursors (
    consumer TEXT NOT NULL,
    stream TEXT NOT NULL,
    offset INTEGER NOT NULL,
    PRIMARY KEY (consumer, stream)
);
CREATE TABLE IF NOT EXISTS traces (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    closed_ns INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    severity TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    body BLOB NOT NULL
);
"""

EVENTS_PAGE_SIZE = 16384  # bytes; applies when events.db is created (module docstring)
_ID_CHUNK = 500  # ids per "IN (...)" probe; well under SQLITE_MAX_VARIABLE_NUMBER
_QUERY_PAGE = 2000  # rows decoded at a time by a query that filters on a field of the body
# rows per INSERT: 500 x 9 = 4500 parameters (SQLite >= 3.32 allows 32766; older ones 999)
_INSERT_CHUNK = 500 if sqlite3.sqlite_version_info >= (3, 32, 0) else 100


@functools.lru_cache(maxsize=8)
def _insert_sql(rows: int) -> str:
    return "INSERT INTO events VALUES " + ",".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * rows)
_STAMPED = ("seq", "received_ns", "publisher", "tenant")


class LogMissing(FileNotFoundError):
    """No event log in the given data directory."""


#: SQLite's words for a write the file system refused (SQLITE_FULL, SQLITE_IOERR): not a damaged log.
_WRITE_ERRORS = {"database or disk is full", "disk I/O error"}


class LogUnusable(OSError):
    """Databases in the data directory that SQLite cannot use as the event log (damaged, or not one)."""


#: msgspec's msgpack codec: the same values as msgpack-python's for what the log
#: stores, about twice as fast both ways (every consumer read decodes).
_decode = msgspec.msgpack.Decoder().decode
_encode = msgspec.msgpack.Encoder().encode
_decode_json = msgspec.json.Decoder().decode

_EVENT_ROWS = "SELECT seq, received_ns, publisher, tenant, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?"
# One row for a whole range (see the module docstring); both aggregates see the rows in the same order.
_EVENT_RANGE = ("SELECT CAST(group_concat(body, '') AS BLOB), "
                "json_group_array(json_array(seq, received_ns, publisher, tenant, length(body))) "
                f"FROM ({_EVENT_ROWS})")


def _record_of(row: tuple) -> dict:
    seq, body = row
    record = _decode(body)
    record["seq"] = seq
    return record


class SqliteLog(EventLog):
    """:class:`EventLog` on two SQLite files in ``data_dir`` (module docstring)."""

    def __init__(self, data_dir: str | os.PathLike, durability: str = "normal", create: bool = True, background_checkpoint: bool = False):
        self.data_dir = Path(data_dir)
        self.events_path = self.data_dir / "events.db"
        self.state_path = self.data_dir / "state.db"
        if not create and not self.events_path.exists():
            raise LogMissing(f"no event log in {self.data_dir} (expected {self.events_path})")
        self._sync = "FULL" if durability == "fsync" else "NORMAL"
        self._background_checkpoint = background_checkpoint
        self._range_reads = True  # see read_stored
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._closed = False
        self._writer = create
        try:
            self._open(create)
        except sqlite3.DatabaseError as exc:
            self.close()
            if isinstance(exc, sqlite3.OperationalError) and str(exc) in _WRITE_ERRORS:
                hint = "is the file system full or failing? (df, dmesg)"
            else:
                hint = "if it is damaged, move the data dir aside and restore a copy (secbus backup)"
            raise LogUnusable(f"the event log in {self.data_dir} cannot be used: {exc}; {hint}") from None

    def _open(self, create: bool) -> None:
        ev, st = self._conns()
        if create:
            ev.executescript(EVENTS_SCHEMA)
            st.executescript(STATE_SCHEMA + trace_store.SCHEMA)
            trace_store.migrate(st)
        # a reader of a log no broker has opened since the bulk trace index came: the old index
        self._trace_index = st.execute("SELECT 1 FROM sqlite_master WHERE name = 'trace_index'").fetchone() is not None
        self._pruned_at = 0  # traces deleted by retention since the index was last pruned
        row = ev.execute("SELECT value FROM meta WHERE key = 'head'").fetchone() if create or self._has_meta(ev) else None
        self._events_head = row[0] if row else (ev.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])

    @staticmethod
    def _has_meta(conn: sqlite3.Connection) -> bool:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is not None

    # --- connections -------------------------------------------------------
    def _connect(self, path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
        if path == self.events_path and self._writer and path.stat().st_size == 0:
            conn.execute(f"PRAGMA page_size={EVENTS_PAGE_SIZE}")  # a new log: before WAL mode fixes it
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._sync}")
        conn.execute("PRAGMA temp_store=MEMORY")
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _conns(self) -> tuple[sqlite3.Connection, sqlite3.Connection]:
        if self._closed:
            raise RuntimeError("event log is closed")
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = (self._connect(self.events_path), self._connect(self.state_path))
            if self._background_checkpoint:
                conns[0].execute("PRAGMA wal_autocheckpoint=0")
            self._local.conns = conns
        return conns

    def checkpoint(self) -> None:
        """PASSIVE checkpoint of events.db: never waits for readers or the writer."""
        ev, _ = self._conns()
        ev.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    # --- writing -----------------------------------------------------------
    def append_events(self, events: Sequence[StampedEvent]) -> list[int | None]:
        ev, _ = self._conns()
        head = self._events_head
        # Optimistic: a re-sent batch is rare, so insert without looking first and let
        # the UNIQUE index on the id refuse a duplicate (the transaction is then rolled
        # back and the batch goes the careful way).  Looking first cost ~8% of ingest.
        rows = [(head + i, e.id, e.received_ns, e.publisher, e.tenant, e.ts, e.type, e.trace_id, e.body)
                for i, e in enumerate(events, 1)]
        try:
            self._insert(ev, rows)
        except sqlite3.IntegrityError:
            return self._append_deduplicated(ev, events)
        return list(range(head + 1, head + len(rows) + 1))

    def _append_deduplicated(self, ev: sqlite3.Connection, events: Sequence[StampedEvent]) -> list[int | None]:
        """Append the events whose id neither the log nor an earlier event of this call holds."""
        ids = [e.id for e in events]
        existing: set[str] = set()
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = ids[start : start + _ID_CHUNK]
            marks = ",".join("?" * len(chunk))
            existing.update(r[0] for r in ev.execute(f"SELECT id FROM events WHERE id IN ({marks})", chunk))
        seqs: list[int | None] = []
        rows = []
        head = self._events_head
        for e in events:
            if e.id in existing:
                seqs.append(None)
                continue
            existing.add(e.id)
            head += 1
            seqs.append(head)
            rows.append((head, e.id, e.received_ns, e.publisher, e.tenant, e.ts, e.type, e.trace_id, e.body))
        self._insert(ev, rows)
        return seqs

    def _insert(self, ev: sqlite3.Connection, rows: list[tuple]) -> None:
        """Insert ``rows`` (seqs following the head) and the new head in one transaction."""
        if not rows:
            return
        with immediate(ev):
            # multi-row INSERTs: one statement step per chunk instead of per row, so the
            # interpreter lock is released and re-taken a few times, not once per event
            for start in range(0, len(rows), _INSERT_CHUNK):
                chunk = rows[start : start + _INSERT_CHUNK]
                ev.execute(_insert_sql(len(chunk)), [value for row in chunk for value in row])
            ev.execute("INSERT OR REPLACE INTO meta VALUES ('head', ?)", (rows[-1][0],))
        self._events_head = rows[-1][0]

    def append(self, stream: str, records: Sequence[dict], cursor: tuple[str, int] | None = None, dedupe: bool = False) -> list[int | None]:
        return self.append_encoded(stream, records, cursor, dedupe)[0]

    def append_encoded(self, stream: str, records: Sequence[dict], cursor: tuple[str, int] | None = None, dedupe: bool = False) -> tuple[list[int | None], list[bytes]]:
        if stream not in ("traces", "alerts"):
            raise ValueError(f"stream: expected traces or alerts, got {stream!r}")
        _, st = self._conns()
        now = time.time_ns()
        out: list[int | None] = []
        bodies: list[bytes] = []
        rows: list[tuple] = []
        with immediate(st):
            # offsets are given explicitly (head + 1, ...) so that many rows go in one
            # statement; BEGIN IMMEDIATE keeps any other writer out meanwhile
            row = st.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (stream,)).fetchone()
            head = row[0] if row else 0
            if stream == "traces" and dedupe:
                trace_store.index_pending(st, head)  # so that the index alone answers the probes below
            for record in records:
                # the tail cache keeps the whole record (its events for on_trace readers that are
                # still in memory); the log stores a trace slim
                body = _encode({k: v for k, v in record.items() if k not in ("seq", "event_seqs")})
                bodies.append(body)
                if stream == "traces":
                    events = [e for e in record.get("events") or [] if isinstance(e, dict)]  # not msgspec.Raw
                    first_seq = record.get("first_seq") or min((e.get("seq", 0) for e in events), default=0)
                    if dedupe and self._stored_trace(st, record["tenant"], record["trace_id"], first_seq):
                        out.append(None)
                        continue
                    head += 1
                    rows.append((head, record["tenant"], record["trace_id"], first_seq, now, _encode(trace_store.slim(record))))
                else:
                    head += 1
                    rows.append((head, str(record.get("severity", "info")), now, body))
                out.append(head)
            width = 6 if stream == "traces" else 4
            columns = "(seq, tenant, trace_id, first_seq, closed_ns, body)" if stream == "traces" else "(seq, severity, created_ns, body)"
            marks = "(" + ", ".join("?" * width) + ")"
            for start in range(0, len(rows), 100):
                chunk = rows[start : start + 100]
                st.execute(f"INSERT INTO {stream} {columns} VALUES " + ",".join([marks] * len(chunk)), [v for r in chunk for v in r])
            if stream == "traces" and trace_store.unindexed(st, head) >= trace_store.INDEX_BATCH:
                trace_store.index_pending(st, head)
            if cursor is not None:
                st.execute("INSERT OR REPLACE INTO cursors VALUES (?, 'events', ?)", cursor)
        return out, bodies

    @staticmethod
    def _stored_trace(st: sqlite3.Connection, tenant: str, trace_id: str, first_seq: int) -> bool:
        return any(record.get("tenant") == tenant and record.get("first_seq") == first_seq
                   for record in map(_record_of, trace_store.lookup(st, trace_id)))

    # --- reading -----------------------------------------------------------
    def read(self, stream: str, after: int, limit: int) -> list[dict]:
        if stream == "events":
            return decode_rows(self.read_stored(after, limit))
        if stream in ("traces", "alerts"):
            _, st = self._conns()
            rows = st.execute(f"SELECT seq, body FROM {stream} WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)).fetchall()
            records = [_record_of(r) for r in rows]
            return trace_store.resolve(records, self._events_by_seq) if stream == "traces" else records
        raise ValueError(f"stream: expected one of {', '.join(STREAMS)}, got {stream!r}")

    def read_stored(self, after: int, limit: int) -> list[StoredRow]:
        ev, _ = self._conns()
        if self._range_reads:
            try:
                (bodies, columns), = ev.execute(_EVENT_RANGE, (after, limit)).fetchall()
            except sqlite3.OperationalError as exc:  # an SQLite built without JSON functions
                self._range_reads = False
                log.info("event log: reading row by row (%s)", exc)
            else:
                rows = _decode_json(columns)
                seqs = [row[0] for row in rows]
                if all(map(operator.lt, seqs, seqs[1:])) and len(bodies or b"") == sum(row[4] for row in rows):
                    out = []
                    offset = 0
                    for seq, received_ns, publisher, tenant, length in rows:
                        out.append((seq, received_ns, publisher, tenant, bodies[offset : offset + length]))
                        offset += length
                    return out
        return ev.execute(_EVENT_ROWS, (after, limit)).fetchall()

    def head(self, stream: str) -> int:
        if stream == "events":
            return self._events_head if self._is_writer() else self._read_events_head()
        _, st = self._conns()
        row = st.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (stream,)).fetchone()
        return row[0] if row else 0

    def _is_writer(self) -> bool:
        return self._writer

    def _read_events_head(self) -> int:
        ev, _ = self._conns()
        row = ev.execute("SELECT value FROM meta WHERE key = 'head'").fetchone()
        return row[0] if row else 0

    def refresh(self) -> None:
        """Re-read the events head from disk (for a reader opened beside a running broker)."""
        self._events_head = self._read_events_head()

    def first(self, stream: str) -> int:
        ev, st = self._conns()
        conn = ev if stream == "events" else st
        row = conn.execute(f"SELECT min(seq) FROM {stream}").fetchone()
        return row[0] if row and row[0] is not None else self.head(stream) + 1

    def trace(self, tenant: str | None, trace_id: str, open_after: int = 0) -> list[dict]:
        ev, st = self._conns()
        if self._trace_index:
            rows = trace_store.lookup(st, trace_id)
        else:
            rows = st.execute("SELECT seq, body FROM traces WHERE trace_id = ?", (trace_id,)).fetchall()
        records = [r for r in map(_record_of, rows) if tenant is None or r.get("tenant") == tenant]
        parts = [r.get("events", []) for r in trace_store.resolve(records, self._events_by_seq)]
        sql = "SELECT seq, received_ns, publisher, tenant, body FROM events WHERE seq > ? AND trace_id = ?"
        args: list[Any] = [open_after, trace_id]
        if tenant is not None:
            sql += " AND tenant = ?"
            args.append(tenant)
        parts.append(decode_rows(ev.execute(sql, args).fetchall()))
        return merge_trace_events(parts)

    def _events_by_seq(self, seqs: list[int]) -> dict[int, dict]:
        ev, _ = self._conns()
        marks = ",".join("?" * len(seqs))
        rows = ev.execute(f"SELECT seq, received_ns, publisher, tenant, body FROM events WHERE seq IN ({marks})", seqs).fetchall()
        return {event["seq"]: event for event in decode_rows(rows)}

    def query(self, tenant=None, type_prefix=None, since_ns=None, until_ns=None, limit=1000, outcome=None,
              newest=False, fields=None, after_seq=0) -> list[dict]:
        """``fields`` (and ``outcome``) are inside the stored body, not columns: the other filters
        select rows in pages of ``_QUERY_PAGE``; only bodies holding every needle of the
        :class:`FieldMatch` are read and tested."""
        fields = dict(fields or {})
        if outcome is not None:
            fields["outcome"] = outcome
        match = FieldMatch(fields)
        ev, _ = self._conns()
        where, args = [], []
        if tenant is not None:
            where.append("tenant = ?")
            args.append(tenant)
        if type_prefix:
            # type is [a-z0-9_.], so a range on the prefix is exact (no LIKE escaping needed)
            where.append("type >= ? AND type < ?")
            args += [type_prefix, type_prefix + "\U0010ffff"]
        if since_ns is not None:
            where.append("ts >= ?")
            args.append(since_ns)
        if until_ns is not None:
            where.append("ts < ?")
            args.append(until_ns)
        if after_seq:
            where.append("seq > ?")
            args.append(after_seq)
        for needle in match.needles:
            # rows without the needle cannot match, and SQLite skips them undecoded
            where.append("instr(body, ?) > 0")
            args.append(needle)
        # pages follow seq (the rowid) from either end; ``past`` is the last seq read
        sql = ("SELECT seq, received_ns, publisher, tenant, body FROM events WHERE "
               + " AND ".join(where + ["seq < ?" if newest else "seq > ?"])
               + (" ORDER BY seq DESC LIMIT ?" if newest else " ORDER BY seq LIMIT ?"))
        page = _QUERY_PAGE if match else limit
        found: list[dict] = []
        past = 2**63 - 1 if newest else 0
        while len(found) < limit:
            rows = ev.execute(sql, args + [past, page]).fetchall()
            events = decode_rows(rows)
            found += [e for e in events if not match or match.matches(e)][: limit - len(found)]
            if len(rows) < page:
                break  # the table is read to its end
            past = rows[-1][0]
        return found

    # --- cursors -----------------------------------------------------------
    def get_cursor(self, consumer: str, stream: str) -> int | None:
        _, st = self._conns()
        row = st.execute("SELECT offset FROM cursors WHERE consumer = ? AND stream = ?", (consumer, stream)).fetchone()
        return row[0] if row else None

    def set_cursor(self, consumer: str, stream: str, offset: int) -> None:
        _, st = self._conns()
        st.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?, ?)", (consumer, stream, offset))

    def cursors(self) -> dict[tuple[str, str], int]:
        _, st = self._conns()
        return {(c, s): o for c, s, o in st.execute("SELECT consumer, stream, offset FROM cursors")}

    # --- upkeep ------------------------------------------------------------
    def retain(self, max_age_ns: int, max_bytes: int, floor: dict[str, int], now_ns: int, chunk: int = 5000) -> int:
        ev, st = self._conns()
        deleted = 0
        # events: by age of arrival, then by size (oldest first), never past the floor
        limit_seq = floor.get("events", self._events_head)
        first = ev.execute("SELECT min(seq) FROM events").fetchone()[0]
        if first is not None and first <= limit_seq:
            upto = min(limit_seq, first + chunk - 1)
            old = ev.execute(
                "SELECT max(seq) FROM events WHERE seq BETWEEN ? AND ? AND received_ns < ?",
                (first, upto, now_ns - max_age_ns),
            ).fetchone()[0]
            if self._used_bytes(ev) > max_bytes:
                old = upto
            if old is not None:
                with immediate(ev):
                    deleted += ev.execute("DELETE FROM events WHERE seq <= ?", (old,)).rowcount
        for stream, column in (("traces", "closed_ns"), ("alerts", "created_ns")):
            limit_seq = floor.get(stream, self.head(stream))
            cur = st.execute(
                f"DELETE FROM {stream} WHERE seq IN (SELECT seq FROM {stream} WHERE seq <= ? AND {column} < ? ORDER BY seq LIMIT ?)",
                (limit_seq, now_ns - max_age_ns, chunk),
            )
            deleted += cur.rowcount
            if stream == "traces":
                self._pruned_at += cur.rowcount
        if self._pruned_at >= trace_store.INDEX_BATCH and self._trace_index:
            trace_store.prune(st)
            self._pruned_at = 0
        return deleted

    @staticmethod
    def _used_bytes(conn: sqlite3.Connection) -> int:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return (pages - free) * size

    def stats(self) -> dict[str, Any]:
        ev, st = self._conns()
        out: dict[str, Any] = {"path": str(self.data_dir), "durability": "fsync" if self._sync == "FULL" else "normal"}
        size = 0
        for path in (self.events_path, self.state_path):
            for suffix in ("", "-wal"):
                p = Path(str(path) + suffix)
                if p.exists():
                    size += p.stat().st_size
        out["size_bytes"] = size
        streams = {}
        for stream in STREAMS:
            head = self.head(stream)
            first = self.first(stream)
            # offsets are contiguous and retention deletes from the front: no count(*) scan
            streams[stream] = {"head": head, "first": first, "count": max(0, head - first + 1)}
        out["streams"] = streams
        try:  # the file system the log is on: how close it is to full (bus/health.py)
            fs = os.statvfs(self.data_dir)
            out["disk"] = {"free_bytes": fs.f_bavail * fs.f_frsize, "size_bytes": fs.f_blocks * fs.f_frsize}
        except OSError:
            pass
        return out

    def close(self) -> None:
        with self._all_lock:
            conns, self._all = self._all, []
            self._closed = True
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass


def open_log(data_dir: str | os.PathLike, durability: str = "normal", create: bool = True, background_checkpoint: bool = False) -> SqliteLog:
    """Open (and with ``create``, initialise) the log in ``data_dir``."""
    return SqliteLog(data_dir, durability=durability, create=create, background_checkpoint=background_checkpoint)
