"""Wake consumers when a stream grows, instead of polling the database.

Writers call :meth:`Wakeup.advance` after a commit with the stream's new head;
readers call :meth:`Wakeup.wait` with the heads they have seen.  An advance wakes
only the waiters of that stream: each waiter blocks on a lock of its own, which
the advance releases.  (With one ``Condition`` for every stream, each events or
traces advance woke every runner thread of the consumer process; the wake-ups,
futex calls made while holding the interpreter lock, were a tenth of that
process's CPU at 40k events/s: benchmarks/FINDINGS.md 10.)
"""

from __future__ import annotations

import threading

from ..log.base import STREAMS


class Wakeup:
    def __init__(self, heads: dict[str, int] | None = None):
        self._lock = threading.Lock()
        self._waiters: list[tuple[tuple[str, ...], threading.Lock]] = []  # (streams, gate held until woken)
        self._heads = {s: 0 for s in STREAMS}
        if heads:
            self._heads.update(heads)
        self._committed = dict(self._heads)  # may run ahead of _heads (see committed)
        self._closed = False

    def head(self, stream: str) -> int:
        return self._heads[stream]

    def committed(self, stream: str) -> int:
        """The newest offset known to be committed, which may be ahead of
        :meth:`head` while the tail follower reads it: lags are measured
        against this, so /healthz never understates them."""
        return max(self._heads[stream], self._committed[stream])

    def note_committed(self, stream: str, head: int) -> None:
        if head > self._committed[stream]:
            self._committed[stream] = head

    def advance(self, stream: str, head: int) -> None:
        with self._lock:
            if head > self._heads[stream]:
                self._heads[stream] = head
            woken = [w for w in self._waiters if stream in w[0]]
            if woken:
                self._waiters = [w for w in self._waiters if stream not in w[0]]
        for _, gate in woken:
            gate.release()

    def poke(self) -> None:
        """Wake every waiter (stop requested, settings changed)."""
        with self._lock:
            woken, self._waiters = self._waiters, []
        for _, gate in woken:
            gate.release()

    def wait(self, seen: dict[str, int], timeout: float) -> bool:
        """Block until some stream in ``seen`` has a head beyond it, a poke, or ``timeout``."""
        gate = threading.Lock()
        gate.acquire()
        entry = (tuple(seen), gate)
        with self._lock:
            if any(self._heads[s] > h for s, h in seen.items()):
                return True
            self._waiters.append(entry)
        if gate.acquire(timeout=max(0.0, timeout)):
            return True
        with self._lock:
            if entry in self._waiters:  # timed out, still registered
                self._waiters.remove(entry)
                return False
        return True  # woken just as the wait ran out
