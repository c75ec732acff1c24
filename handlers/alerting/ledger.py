"""Durable state of the alerting handler: engine snapshots and the suppression ledger.

One sqlite database (``<data_dir>/alerting/state.db``, WAL mode):

* ``state``: the engine's snapshot (windows, open suppression windows, the
  last event and trace ``seq`` processed) as JSON.  Saved after every batch
  that published an alert (so a restart never repeats an alert) and at
  most every ``state_interval`` seconds otherwise, and at shutdown.
* ``suppressed``: one row per suppressed event under the id of the alert
  that stood for it, so "what did this alert hide?" always has an answer
  (``GET /alerting/alerts/{id}`` on the broker's HTTP port).  Pruned to the
  newest ``ledger_max_rows`` rows.

Why sqlite: transactions make "ledger rows and state together" atomic, and
it is in the standard library.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS state (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS suppressed (
    alert_id TEXT NOT NULL, seq INTEGER NOT NULL, event_id TEXT NOT NULL,
    trace_id TEXT NOT NULL, ts INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS suppressed_by_alert ON suppressed (alert_id);
"""


class Ledger:
    def __init__(self, path: Path, max_rows: int = 1_000_000):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.max_rows = max_rows
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self.pending: list[tuple] = []
        self._writes = 0

    def add(self, alert_id: str, ref: tuple) -> None:
        ts, seq, event_id, trace_id = ref
        self.pending.append((alert_id, seq, event_id, trace_id, ts))

    def load_state(self) -> dict | None:
        row = self.db.execute("SELECT v FROM state WHERE k = 'engine'").fetchone()
        return json.loads(row[0]) if row else None

    def commit(self, state: dict | None) -> None:
        """Write pending ledger rows and (if given) the engine state in one transaction."""
        if not self.pending and state is None:
            return
        with self.db:
            self.db.execute("BEGIN")
            if self.pending:
                self.db.executemany("INSERT INTO suppressed VALUES (?, ?, ?, ?, ?)", self.pending)
                self._writes += len(self.pending)
            if state is not None:
                self.db.execute("INSERT OR REPLACE INTO state VALUES ('engine', ?)", (json.dumps(state),))
            if self._writes > self.max_rows // 10:
                self.db.execute("DELETE FROM suppressed WHERE rowid <= (SELECT MAX(rowid) FROM suppressed) - ?",
                                (self.max_rows,))
                self._writes = 0
        self.pending.clear()

    def suppressed_by(self, alert_id: str, limit: int = 1000) -> dict:
        """The ledger of one alert: how many events it suppressed, and the first ``limit``."""
        db = sqlite3.connect(self.path)
        try:
            (count,) = db.execute("SELECT COUNT(*) FROM suppressed WHERE alert_id = ?", (alert_id,)).fetchone()
            rows = db.execute("SELECT seq, event_id, trace_id, ts FROM suppressed WHERE alert_id = ? "
                              "ORDER BY seq LIMIT ?", (alert_id, limit)).fetchall()
        finally:
            db.close()
        return {"alert_id": alert_id, "suppressed": count,
                "events": [{"seq": s, "id": i, "trace_id": t, "ts": ts} for s, i, t, ts in rows]}

    def close(self) -> None:
        self.db.close()
