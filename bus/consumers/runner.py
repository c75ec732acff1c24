"""A handler's runner: one thread, one cursor per stream, at-least-once delivery in log order.

Why a thread per handler: a handler that is slow, blocks on I/O or raises
must not slow ingest or any other handler.  Each runner reads the log behind
its own cursors and calls only its own plugin's hooks (pluggy
``subset_hook_caller``).

Delivery: ``on_events`` gets batches of up to ``batch_size`` events (as
dicts, as stored rows, or both: whichever arguments the handler declares);
``on_trace`` and ``on_alert`` get one record per call.  The cursor moves only
after a hook returns and is stored at most every 0.2 s and at the latest
0.2 s after it moved, busy or idle (and when stopping), so a crash
re-delivers at most the last 0.2 s of batches: at least once.  A hook that raises is logged with the
handler's name, counted, and the same batch is retried after an exponential
backoff (50 ms doubling to 5 s).

Lag policies:

* ``block`` (default): the log keeps every event this handler has not
  handled; retention and ingest's ``overloaded`` bound respect its cursor.
  For compliance handlers (audit) that may not miss a record.
* ``drop``: when the handler is more than ``max_lag`` records behind, its
  cursor jumps to ``head - max_lag`` and the records jumped over are counted
  as ``skipped``.  For best-effort handlers (metrics) that must never hold
  the log back.

Memory per runner is bounded by one batch, whatever the backlog.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..log.base import EventLog
from .plugins import caller_for, implemented_hooks
from .wakeup import Wakeup

HOOK_STREAM = {"on_events": "events", "on_trace": "traces", "on_alert": "alerts"}
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 5.0
#: Cursors are stored at most this often while a handler is busy (and whenever it
#: goes idle or stops): a commit per batch per handler cost ~6% of the broker's CPU.
#: After a crash a handler may see up to this much again (at least once).
PERSIST_EVERY_S = 0.2
IDLE_WAIT_S = 0.5  # an idle runner looks at its stop flag this often


class HandlerRunner:
    kind = "handler"

    def __init__(self, name: str, plugin: object, pm, log_: EventLog, wakeup: Wakeup, options: dict[str, Any]):
        self.name = name
        self.plugin = plugin
        self.pm = pm
        self.log = log_
        self.wakeup = wakeup
        self.lag_policy = options["lag_policy"]
        self.max_lag = options["max_lag"]
        self.batch_size = options["batch_size"]
        self.logger = logging.getLogger(f"secbus.handler.{name}")
        hooks = implemented_hooks(pm, plugin)
        self.callers = {h: caller_for(pm, plugin, h) for h in HOOK_STREAM if h in hooks}
        self.streams = {HOOK_STREAM[h]: h for h in self.callers}
        # on_events(events, stored), on_trace(trace, stored): dicts only for a handler that asks
        self._event_dicts = "events" in self._declared("on_events")
        self._trace_dicts = "trace" in self._declared("on_trace")
        self.has_shutdown = "shutdown" in hooks
        self.cursors: dict[str, int] = {}
        for stream in self.streams:
            stored = log_.get_cursor(name, stream)
            if stored is None:
                # A newly enabled handler starts at the head: replaying a long log into it
                # would count as backlog at once and could turn every publisher away.
                # Stored now, so a crash before its first batch cannot make it skip ahead.
                stored = log_.head(stream)
                log_.set_cursor(name, stream, stored)
            self.cursors[stream] = stored
        self.state = "starting"
        self.failures = 0
        self.skipped = 0
        self.delivered = 0
        self.errors = 0  # failures of the log, not of the handler
        self._persist_failing = False  # storing cursors fails (a full disk): logged once, not per retry
        self.last_error: str | None = None
        self._consecutive = 0
        self._dirty: set[str] = set()
        self._persisted_at = time.monotonic()
        self._stop = threading.Event()
        self._deadline: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"handler-{name}", daemon=True)

    def _declared(self, hook: str) -> set[str]:
        """The arguments this handler's ``hook`` takes (pluggy passes it only those)."""
        caller = self.callers.get(hook)
        return {name for impl in (caller.get_hookimpls() if caller else []) for name in impl.argnames}

    # --- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        if self.state == "failed":
            return
        self.state = "running"
        self._thread.start()

    def stop(self, deadline: float) -> None:
        """Drain until caught up or ``deadline`` (time.monotonic), then call ``shutdown``."""
        self.request_stop(deadline)
        self.join(deadline)

    def request_stop(self, deadline: float) -> None:
        self._deadline = deadline
        self._stop.set()
        self.wakeup.poke()

    def join(self, deadline: float) -> None:
        if self._thread.is_alive():
            self._thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
            if self._thread.is_alive():
                self.logger.error("handler %s: still busy after the shutdown deadline; abandoning it", self.name)

    def block_cursors(self) -> dict[str, int]:
        if self.lag_policy != "block" or self.state in ("failed", "stopped"):
            return {}
        return dict(self.cursors)

    def health(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "lag_policy": self.lag_policy,
            "max_lag": self.max_lag,
            "batch_size": self.batch_size,
            "cursor": dict(self.cursors),
            "lag": {s: max(0, self.wakeup.committed(s) - c) for s, c in self.cursors.items()},
            "failures": self.failures,
            "skipped": self.skipped,
            "delivered": self.delivered,
            "log_errors": self.errors,
            "last_error": self.last_error,
        }

    # --- the loop ----------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                progressed = False
                for stream in self.streams:
                    progressed |= self._step(stream)
            except Exception:  # the log itself failed (disk, lock timeout): log, wait, carry on
                self.logger.exception("handler %s: reading or storing its cursor failed; retrying in 1s", self.name)
                self.errors += 1
                progressed = False
                self._stop.wait(1.0)
            if self._stop.is_set():
                caught_up = all(self.cursors[s] >= self.wakeup.head(s) for s in self.streams)
                if caught_up or time.monotonic() >= (self._deadline or 0):
                    if not caught_up:
                        self.logger.warning("handler %s: shutdown deadline reached with lag %s", self.name, self.health()["lag"])
                    break
            if not progressed:
                self.wakeup.wait({s: self.cursors[s] for s in self.streams}, self._idle_persist())
        self._persist_quietly()
        self._shutdown()

    def _idle_persist(self) -> float:
        """Store moved cursors if they are due; return how long to wait idle (until they are).

        Not at every idle moment: under steady traffic a handler goes idle after almost every
        batch, and a commit per handler per batch was a tenth of the consumer process."""
        if self._dirty:
            due = self._persisted_at + PERSIST_EVERY_S - time.monotonic()
            if due > 0:
                return due
            self._persist_quietly()
        return IDLE_WAIT_S

    def _persist_quietly(self) -> None:
        """Store moved cursors; a failure is the log's (counted in ``log_errors``), not the
        handler's: what it handled stays handled, and the cursors are stored at the next try."""
        try:
            self._persist()
        except Exception as exc:
            self.errors += 1
            if not self._persist_failing:
                self.logger.error("handler %s: storing its cursor failed, retrying (logged again when it works): %s: %s",
                                  self.name, type(exc).__name__, exc)
            self._persist_failing = True
            return
        if self._persist_failing:
            self.logger.warning("handler %s: storing its cursor works again", self.name)
            self._persist_failing = False

    def _shutdown(self) -> None:
        if self.has_shutdown:
            try:
                caller_for(self.pm, self.plugin, "shutdown")()
            except Exception as exc:
                self.logger.error("handler %s: shutdown raised %s: %s", self.name, type(exc).__name__, exc)
        self.state = "stopped"

    def _step(self, stream: str) -> bool:
        head = self.wakeup.head(stream)
        cursor = self.cursors[stream]
        if cursor >= head:
            return False
        if self.lag_policy == "drop" and head - cursor > self.max_lag:
            target = head - self.max_lag
            self.skipped += target - cursor
            self.logger.warning("handler %s: %d %s behind (max_lag %d); skipping %d", self.name, head - cursor, stream, self.max_lag, target - cursor)
            cursor = self.cursors[stream] = target
            self._dirty.add(stream)  # stored with the next persist (within PERSIST_EVERY_S)
        hook = self.callers[self.streams[stream]]
        calls = self._read(stream, cursor)
        if not calls:
            return False
        done, count = None, 0
        try:
            try:
                for kwargs, _, last, n in calls:
                    hook(**kwargs)
                    done, count = last, count + n
            finally:  # the cursor moves past what was handled, once per batch
                if done is not None:
                    self._advance(stream, done, count)
        except BaseException as exc:  # even SystemExit from a plugin is its failure, not the broker's
            self._failed(stream, calls[0][1], calls[-1][2], exc)
            return False
        self._consecutive = 0
        if self.state == "retrying":
            self.state = "running"
        return True

    def _read(self, stream: str, cursor: int) -> list[tuple[dict, int, int, int]]:
        """The next batch as hook calls ``(kwargs, first seq, last seq, records)``: one ``on_events`` call
        for the events read, one call per trace or alert; dicts only where the hook asks."""
        if stream == "events":
            stored, events = self.log.read_events(cursor, self.batch_size, self._event_dicts)
            return [({"events": events, "stored": stored}, stored[0][0], stored[-1][0], len(stored))] if stored else []
        if stream == "traces":
            stored, traces = self.log.read_records(stream, cursor, self.batch_size, self._trace_dicts)
            return [({"trace": traces[i] if traces is not None else None, "stored": raw}, raw[0], raw[0], 1)
                    for i, raw in enumerate(stored)]
        return [({"alert": alert}, alert["seq"], alert["seq"], 1) for alert in self.log.read(stream, cursor, self.batch_size)]

    def _advance(self, stream: str, seq: int, n: int) -> None:
        self.cursors[stream] = seq
        self.delivered += n
        self._dirty.add(stream)
        if time.monotonic() - self._persisted_at >= PERSIST_EVERY_S:
            self._persist_quietly()

    def _persist(self) -> None:
        """Store the cursors that moved (one small commit each)."""
        for stream in list(self._dirty):
            self.log.set_cursor(self.name, stream, self.cursors[stream])
            self._dirty.discard(stream)
        self._persisted_at = time.monotonic()

    def _failed(self, stream: str, first: int, last: int, exc: BaseException) -> None:
        self.failures += 1
        self._consecutive += 1
        self.state = "retrying"
        self.last_error = f"{type(exc).__name__}: {exc}"[:500]
        delay = min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** (self._consecutive - 1))
        self.logger.error(
            "handler %s failed on %s seq %d..%d (failure %d in a row, retrying in %.2fs): %s",
            self.name, stream, first, last, self._consecutive, delay, self.last_error,
            exc_info=self._consecutive == 1,
        )
        if self._stop.is_set():
            delay = min(delay, max(0.0, (self._deadline or 0) - time.monotonic()))
        self._stop.wait(delay) if not self._stop.is_set() else time.sleep(delay)
