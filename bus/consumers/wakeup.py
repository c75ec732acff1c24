"""Wake consumers when a stream grows, instead of polling the database.

Writers call :meth:`Wakeup.advance` after a commit with the stream's new head;
readers call :meth:`Wakeup.wait` with the head they have seen.  One
``threading.Condition`` for all streams: commits are group commits (tens per
second under load), so waking every waiter on each is cheap.
"""

from __future__ import annotations

import threading

from ..log.base import STREAMS


class Wakeup:
    def __init__(self, heads: dict[str, int] | None = None):
        self._cond = threading.Condition()
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
        with self._cond:
            if head > self._heads[stream]:
                self._heads[stream] = head
            self._cond.notify_all()

    def poke(self) -> None:
        """Wake every waiter (stop requested, settings changed)."""
        with self._cond:
            self._cond.notify_all()

    def wait(self, seen: dict[str, int], timeout: float) -> bool:
        """Block until some stream in ``seen`` has a head beyond it, a poke, or ``timeout``."""
        with self._cond:
            if any(self._heads[s] > h for s, h in seen.items()):
                return True
            return self._cond.wait(timeout)
