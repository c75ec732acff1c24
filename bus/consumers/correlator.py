"""The correlator runner: feeds ``secbus.correlation`` from the events stream and
appends closed traces to the traces stream.

The correlation logic (bus/correlation.py) is pure; this runner gives it
events in log order and a clock, and makes it survive restarts:

* Open traces live in memory.  The stored cursor is therefore not "the last
  event read" but "just before the oldest event of a still-open trace"
  (or the last event read when nothing is open).  After a crash or restart
  the runner replays from there and rebuilds every open trace: nothing is lost.
* Replaying may close again a trace that was already stored; traces that
  hold an event read before this start are appended with ``dedupe`` (same
  tenant, trace_id and first event seq: skipped), so no trace is stored twice.
* Closed traces and the cursor are written in one transaction.  When it fails
  (a full disk), the closed traces stay in the runner and go with the next
  attempt: the correlator has already let them go, so nothing else would store them.
* While catching up on a backlog, idleness is measured on the log's clock
  (the ``received_ns`` of the last event read), not the wall clock.  Once the
  replay after a restart is done, the open traces' idle clocks are moved
  forward by the downtime (start time minus the newest event's
  ``received_ns``): time the broker was down does not count as idleness, so
  a trace whose next event arrives just after the restart is still one trace.

The correlator is a ``block`` consumer: retention never deletes an event of
an open trace, and the open traces are bounded by ``max_open_traces``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..correlation import Correlator
from ..log.base import EventLog
from ..log.stored import StoredRow, correlation_fields, stamped_bytes
from .wakeup import Wakeup

NAME = "correlator"
#: How far behind what it has read the correlator may hold retention and the
#: overload bound.  Its cursor sits before the oldest open trace; a trace that
#: never goes idle would otherwise pin the log forever.  Past this, the oldest
#: events of such a trace may be deleted; only a restart would then miss them.
MAX_PIN_EVENTS = 1_000_000
log = logging.getLogger("secbus.correlator")


class CorrelatorRunner:
    kind = "correlator"

    def __init__(self, log_: EventLog, wakeup: Wakeup, config: dict[str, Any], batch_size: int = 1000):
        self.log = log_
        self.wakeup = wakeup
        self.name = NAME
        self.correlator = Correlator(
            trace_idle_ns=int(config["trace_idle_ms"] * 1_000_000),
            max_open_traces=config["max_open_traces"],
            max_trace_events=config.get("max_trace_events", 1000),
            raw_events=True,  # a closed trace's events go into its record as stored (no decode)
        )
        self.expire_interval_s = config["expire_interval_ms"] / 1000
        self.batch_size = batch_size
        stored = log_.get_cursor(NAME, "events")
        self.position = stored if stored is not None else log_.first("events") - 1
        self.cursor = self.position
        # replay bookkeeping (see the module docstring)
        self.replay_until = log_.head("events")
        newest = log_.read_stored(self.replay_until - 1, 1) if self.replay_until > self.position else []
        self.downtime_ns = max(0, time.time_ns() - newest[0][1]) if newest else 0
        self._replaying = self.replay_until > self.position  # until no trace can hold a replayed event
        self.closed = 0
        self.failures = 0
        #: Closed traces a failed append (a full disk) did not store: the correlator has let
        #: them go, so they are kept here and stored with the next commit.
        self._unstored: list[dict] = []
        self.state = "starting"
        self._stop = threading.Event()
        self._deadline: float | None = None
        self._thread = threading.Thread(target=self._run, name="correlator", daemon=True)

    def start(self) -> None:
        self.state = "running"
        self._thread.start()

    def stop(self, deadline: float) -> None:
        """Correlate everything committed (to the deadline), store the cursor; open
        traces stay open and are rebuilt at the next start."""
        self._deadline = deadline
        self._stop.set()
        self.wakeup.poke()
        self._thread.join(max(0.0, deadline - time.monotonic()) + 1.0)

    def block_cursors(self) -> dict[str, int]:
        return {"events": max(self.cursor, self.position - MAX_PIN_EVENTS)}

    def health(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "cursor": {"events": self.cursor},
            "position": self.position,
            "lag": {"events": max(0, self.wakeup.committed("events") - self.position)},
            "open_traces": self.correlator.open_count,
            "closed_traces": self.closed,
            "evicted": self.correlator.evicted,
            "late": self.correlator.late,
            "failures": self.failures,
        }

    def _run(self) -> None:
        last_expire = 0.0
        while True:
            try:
                # Only what the tail follower has made readable (the wakeup's head): past it,
                # a read misses the shared cache and decodes from the log what the follower
                # is about to decode anyway; once ahead, every later read would miss too.
                ready = self.wakeup.head("events") - self.position
                batch = self.log.read_stored(self.position, min(self.batch_size, ready)) if ready > 0 else []
                closed = self._add(batch)
                if batch:
                    self.position = batch[-1][0]
                    if self.downtime_ns and self.position >= self.replay_until:
                        self._forgive_downtime()
                    # log clock while catching up, so replayed traces are not all idle at once
                    behind = self.wakeup.head("events") > self.position
                    now = batch[-1][1] if behind else time.time_ns()
                    closed += self.correlator.expire(now)
                elif time.monotonic() - last_expire >= self.expire_interval_s:
                    closed += self.correlator.expire(time.time_ns())
                    last_expire = time.monotonic()
                self._commit(closed)
            except Exception as exc:
                self.failures += 1
                log.exception("correlator: failed at seq %d: %s", self.position, exc)
                self._stop.wait(1.0)
                continue
            if self._stop.is_set() and (self.position >= self.wakeup.head("events") or time.monotonic() >= (self._deadline or 0)):
                break
            if not batch:
                self.wakeup.wait({"events": self.position}, self.expire_interval_s)
        self.state = "stopped"

    def _add(self, rows: list[StoredRow]) -> list[dict]:
        """Correlate stored events: only the fields correlation reads are decoded, and each
        event is kept as its msgpack with the stamped fields (secbus.log.stored)."""
        add = self.correlator.add_encoded
        closed: list[dict] = []
        for row, fields in zip(rows, correlation_fields(rows)):
            seq, received_ns, _, tenant, _ = row
            source = fields.source
            closed += add(tenant, fields.trace_id, received_ns or fields.ts, seq, fields.ts,
                          source.platform if source else None, source.service if source else None,
                          fields.outcome, stamped_bytes(row))
        return closed

    def _forgive_downtime(self) -> None:
        """Move replayed open traces' idle clocks forward by the downtime (once)."""
        self.correlator.shift_idle(self.downtime_ns, time.time_ns())
        log.info("correlator: replayed %d events after restart; %d traces still open", self.replay_until - self.cursor, self.correlator.open_count)
        self.downtime_ns = 0

    def _commit(self, closed: list[dict]) -> None:
        closed = self._unstored = self._unstored + closed
        oldest = self.correlator.oldest_open_seq()
        cursor = self.position if oldest is None else min(self.position, oldest - 1)
        if not closed and cursor == self.cursor:
            return
        # a trace holding events read before this start may have been stored before a crash
        replayed = self._replaying and any((t.get("first_seq") or 0) <= self.replay_until for t in closed)
        if self._replaying and self.position >= self.replay_until and (oldest is None or oldest > self.replay_until):
            self._replaying = False  # every later trace opens past replay_until
        self.log.append("traces", closed, cursor=(NAME, cursor), dedupe=replayed)
        self._unstored = []
        self.cursor = cursor
        if closed:
            self.closed += len(closed)
            self.wakeup.advance("traces", self.log.head("traces"))
