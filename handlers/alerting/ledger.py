"""Durable state of the alerting handler: engine snapshots and the suppression ledger.

One sqlite database (``<data_dir>/alerting/state.db``, WAL mode):

* ``state`` and ``groups``: the engine's state: the last event and trace
  ``seq`` processed, and one row per rule and group (its window entries,
  sequence progress and open suppression window, as JSON) ordered by when it
  was last active.  Only the groups touched since the last save are
  written, so a save costs what changed, not the whole state.  Saved after
  every batch that published an alert (so a restart never repeats an alert),
  at most every ``state_interval`` seconds otherwise, and at shutdown.
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
CREATE TABLE IF NOT EXISTS groups (
    rule TEXT NOT NULL, key TEXT NOT NULL, touched INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (rule, key));
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
        self._touched = 0

    def add(self, alert_id: str, ref: tuple) -> None:
        ts, seq, event_id, trace_id = ref
        self.pending.append((alert_id, seq, event_id, trace_id, ts))

    def load_state(self) -> dict | None:
        """The saved engine state in the shape ``Engine.restore`` takes, or None."""
        row = self.db.execute("SELECT v FROM state WHERE k = 'engine'").fetchone()
        if row is None:
            return None
        state = json.loads(row[0])
        groups: dict[str, list] = {}
        for rule, key, data in self.db.execute("SELECT rule, key, data FROM groups ORDER BY touched"):
            groups.setdefault(rule, []).append([key, json.loads(data)])
        state["groups"] = groups
        (self._touched,) = self.db.execute("SELECT COALESCE(MAX(touched), 0) FROM groups").fetchone()
        return state

    def commit(self, changes: tuple | None) -> None:
        """Write pending ledger rows and (if given) the engine's changes
        (header, upserted groups, removed groups) in one transaction."""
        if not self.pending and changes is None:
            return
        with self.db:
            self.db.execute("BEGIN")
            if self.pending:
                self.db.executemany("INSERT INTO suppressed VALUES (?, ?, ?, ?, ?)", self.pending)
                self._writes += len(self.pending)
            if changes is not None:
                header, upserts, removed = changes
                self.db.execute("INSERT OR REPLACE INTO state VALUES ('engine', ?)", (json.dumps(header),))
                if removed:
                    self.db.executemany("DELETE FROM groups WHERE rule = ? AND key = ?", removed)
                if upserts:
                    rows = []
                    for rule, key, data in upserts:
                        self._touched += 1
                        rows.append((rule, key, self._touched, json.dumps(data)))
                    self.db.executemany("INSERT OR REPLACE INTO groups VALUES (?, ?, ?, ?)", rows)
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
