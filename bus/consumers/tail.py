"""Follow the events the ingest process commits: put each new range in the cache once, then wake consumers.

The ingest process sends the events of each commit (:mod:`secbus.log.committed`)
or, when it could not, only the new head (:mod:`secbus.consumers.process`).
This thread puts each new range into the shared tail cache
(:class:`secbus.log.cache.CachedLog`), as ingest sent it or else read from
the log (stored rows, not decoded), and only then advances the consumers'
:class:`~.wakeup.Wakeup`, so the correlator, the feed and every handler that
keeps up read the same events from memory, each decoded at most once,
instead of each reading and decoding them again.  A consumer that lags further than the cache reads from the log
itself, as before.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

from ..log import committed
from ..log.cache import CachedLog
from .wakeup import Wakeup

#: Events read from the log per query.
CHUNK = 2000
#: Bytes of events received from ingest and not yet put in the cache; beyond this, they are
#: read from the log (see secbus.consumers.supervisor.MAX_PENDING_BYTES).
MAX_PENDING_BYTES = 2 * 1024 * 1024


class TailFollower:
    def __init__(self, log_: CachedLog, wakeup: Wakeup, chunk: int = CHUNK):
        self.log = log_
        self.wakeup = wakeup
        self.chunk = chunk
        self.filled = wakeup.head("events")  # consumers may read up to here
        self.target = self.filled  # the newest head the ingest process reported
        self.errors = 0
        self.from_ingest = 0  # events put in the cache as ingest sent them
        self.from_log = 0  # events read from the log
        self._pending: collections.deque = collections.deque()  # payloads from ingest, in seq order
        self._pending_bytes = 0
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="tail", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def advance(self, head: int) -> None:
        """Events up to ``head`` are committed (called for each message from ingest)."""
        self.wakeup.note_committed("events", head)
        with self._cond:
            if head > self.target:
                self.target = head
                self._cond.notify_all()

    def offer(self, payload: committed.Payload) -> None:
        """The events of one commit, from ingest (they are committed up to their last seq)."""
        last = committed.last_seq(payload)
        self.wakeup.note_committed("events", last)
        with self._cond:
            if self._pending_bytes < MAX_PENDING_BYTES:
                self._pending.append(payload)
                self._pending_bytes += committed.size(payload)
            if last > self.target:
                self.target = last
            self._cond.notify_all()

    def catch_up(self, deadline: float) -> bool:
        """Wait until everything reported is readable by consumers, or ``deadline`` (monotonic)."""
        with self._cond:
            while self.filled < self.target:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(5.0)

    def health(self) -> dict[str, Any]:
        return {"filled": self.filled, "reported": self.target, "errors": self.errors,
                "from_ingest": self.from_ingest, "from_log": self.from_log}

    def _run(self) -> None:
        while True:
            with self._cond:
                while self.filled >= self.target and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                target = self.target
                pending = self._pending
                while pending and committed.last_seq(pending[0]) <= self.filled:  # read from the log already
                    self._pending_bytes -= committed.size(pending.popleft())
                payload = pending[0] if pending else None
            if payload is not None and payload[0] <= self.filled + 1:
                upto = self._put(payload)
            else:  # not sent (or dropped): read from the log up to the next payload
                end = payload[0] - 1 if payload is not None else target
                upto = self._fill(min(self.chunk, end - self.filled))
            with self._cond:
                self.filled = max(self.filled, upto)
                self._cond.notify_all()
            self.wakeup.advance("events", self.filled)

    def _put(self, payload: committed.Payload) -> int:
        last = committed.last_seq(payload)
        try:
            rows = committed.rows(payload, self.filled)
            self.log.put_rows(rows)
            self.from_ingest += len(rows)
        except Exception:
            self.errors += 1  # consumers read the range from the log themselves
        return last

    def _fill(self, count: int) -> int:
        try:
            upto = self.log.fill_events(self.filled, count)
            self.from_log += upto - self.filled
            return max(upto, self.filled + count)
        except Exception:
            self.errors += 1  # consumers read the range from the log themselves
            return self.filled + count
