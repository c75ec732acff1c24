"""Follow the events the ingest process commits: read each new range once, then wake consumers.

The ingest process sends the events head after every commit
(:mod:`secbus.consumers.process`).  This thread reads the new range from the
log once into the shared tail cache (:class:`secbus.log.cache.CachedLog`)
and only then advances the consumers' :class:`~.wakeup.Wakeup`, so the
correlator, the feed and every handler that keeps up read the same decoded
events from memory instead of each decoding them again.  A consumer that lags
further than the cache reads from the log itself, as before.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..log.cache import CachedLog
from .wakeup import Wakeup

#: Events read from the log per query.
CHUNK = 2000


class TailFollower:
    def __init__(self, log_: CachedLog, wakeup: Wakeup, chunk: int = CHUNK):
        self.log = log_
        self.wakeup = wakeup
        self.chunk = chunk
        self.filled = wakeup.head("events")  # consumers may read up to here
        self.target = self.filled  # the newest head the ingest process reported
        self.errors = 0
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
        return {"filled": self.filled, "reported": self.target, "errors": self.errors}

    def _run(self) -> None:
        while True:
            with self._cond:
                while self.filled >= self.target and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                target = self.target
            try:
                upto = self.log.fill("events", self.filled, min(self.chunk, target - self.filled))
            except Exception:
                self.errors += 1  # consumers still read the range from the log themselves
                upto = target
            with self._cond:
                self.filled = max(upto, self.filled + min(self.chunk, target - self.filled))
                self._cond.notify_all()
            self.wakeup.advance("events", self.filled)
