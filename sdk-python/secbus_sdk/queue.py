"""The bounded in-memory queue between ``emit()`` and the sender thread, and the
full-queue policy.

Why a queue at all: ``emit()`` runs inside the caller's signature or token
check, so it must not touch a socket, a file or a lock.  It appends a tuple
to a ``collections.deque`` (its ``append``/``popleft`` are atomic) and wakes the
sender only when the sender asked for it (``wake_at``: 1 when it is idle, the
batch size while it lingers over a partial batch), the shape of
OpenTelemetry's ``BatchProcessor``.

Why three policies for a full queue (it fills only when the bus is down *and*
the disk spool is full, or when the sender cannot keep up):

* ``drop`` (default) protects the caller's latency: the event is counted in
  ``dropped`` and logged (at most once every 10 s, with the running count).
* ``block`` is for compliance users who may not lose a record: ``emit()`` waits
  for room, up to ``block_timeout`` (``None``: for ever); on timeout the event
  is dropped and counted.
* ``fallback`` bounds the wait to one local write without silent loss: the
  event is written synchronously to the fallback sink (:mod:`.fallback`).

Capacity arithmetic: 10 000 queued events of about 300 bytes of Python
objects each is about 3 MiB per client at the default ``queue_size``.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from typing import Callable

from .fallback import FallbackSink

log = logging.getLogger("secbus_sdk")

POLICIES = ("drop", "block", "fallback")
NEVER = 1 << 62  # a wake_at no queue length reaches
_LOG_EVERY = 10.0


class EventQueue:
    """A bounded FIFO of event tuples with a wake-up pipe for the sender."""

    def __init__(
        self,
        capacity: int,
        policy: str,
        block_timeout: float | None,
        fallback: FallbackSink | None,
        build_event: Callable[[tuple], dict],
    ):
        self.items: collections.deque = collections.deque()
        self.capacity = capacity
        self.policy = policy
        self.block_timeout = block_timeout
        self.fallback = fallback
        self.build_event = build_event
        self.wake_at = 1
        self.closed = False
        self.dropped = 0
        self.fallback_written = 0
        self.last_error: str | None = None
        self.last_error_at = 0.0
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self.waiting = 0
        self._last_drop_log = 0.0
        self._drops_unlogged = 0
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        os.set_inheritable(self.wake_r, False)
        os.set_inheritable(self.wake_w, False)

    # ----------------------------------------------------------- emit side

    def wake(self) -> None:
        """Wake the sender (called by ``emit`` when ``len(items) >= wake_at``)."""
        self.wake_at = NEVER
        try:
            os.write(self.wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full: the sender is awake already

    def put_full(self, item: tuple) -> None:
        """``emit`` found the queue full (or closed): apply the policy."""
        if self.closed:
            self.count_drop("the client is closed")
            return
        if self.policy == "block":
            if self._wait_for_room():
                self.items.append(item)
                if len(self.items) >= self.wake_at:
                    self.wake()
                return
            self.count_drop(f"queue full for block_timeout={self.block_timeout}s")
            return
        if self.policy == "fallback" and self.fallback is not None:
            try:
                self.fallback.write(self.build_event(item))
            except Exception as exc:  # the sink is the user's: never let it break emit
                self.count_drop(f"fallback sink {self.fallback.description} failed: {type(exc).__name__}: {exc}")
                return
            with self._lock:
                self.fallback_written += 1
            return
        self.count_drop(f"queue full ({self.capacity} events)")

    def _wait_for_room(self) -> bool:
        deadline = None if self.block_timeout is None else time.monotonic() + self.block_timeout
        with self._room:
            self.waiting += 1
            try:
                while len(self.items) >= self.capacity:
                    if self.closed:
                        return False
                    if len(self.items) >= self.wake_at:
                        self.wake()
                    remaining = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
                    if remaining <= 0:
                        return False
                    # Timed waits: a notify lost to a race costs at most 100 ms.
                    self._room.wait(remaining)
                return not self.closed
            finally:
                self.waiting -= 1

    def count_drop(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.dropped += n
            now = time.monotonic()
            self.last_error = f"dropped: {reason}"
            self.last_error_at = now
            self._drops_unlogged += n
            if now - self._last_drop_log < _LOG_EVERY:
                return
            unlogged, self._drops_unlogged = self._drops_unlogged, 0
            self._last_drop_log = now
            total = self.dropped
        log.warning("secbus: dropped %d event(s) (%d in total): %s", unlogged, total, reason)

    # ----------------------------------------------------------- sender side

    def notify_room(self) -> None:
        if self.waiting:
            with self._room:
                self._room.notify_all()

    def drain_wake_pipe(self) -> None:
        try:
            while os.read(self.wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        """Refuse new events (they are counted as dropped) and release blocked emitters."""
        self.closed = True
        self.capacity = 0
        with self._room:
            self._room.notify_all()

    def close_pipe(self) -> None:
        for fd in (self.wake_r, self.wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

