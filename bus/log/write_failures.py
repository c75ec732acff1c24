"""Failing writes to the event log, for ``/healthz``: a full disk must be seen, not only logged.

The ingest process writes the log in three places: the group **commit** (a
failure turns the whole group away with ``overloaded``: nothing is ACKed and
publishers keep their events and retry), the background **checkpoint** (the
write-ahead log grows while it fails) and **retention** (old events stay while
it fails).  For each, this counts failures and remembers the last error and since
when writes have been failing; the next success ends the episode.  Each
operation is recorded by one thread, so plain attributes are enough.
"""

from __future__ import annotations

import logging
import time
from typing import Any

OPERATIONS = ("commit", "checkpoint", "retention")

log = logging.getLogger("secbus.log")


class WriteFailures:
    def __init__(self) -> None:
        self.failures = dict.fromkeys(OPERATIONS, 0)
        self.failing_since_ns: dict[str, int | None] = dict.fromkeys(OPERATIONS)
        self.last_error: dict[str, str | None] = dict.fromkeys(OPERATIONS)

    def failed(self, operation: str, exc: BaseException) -> None:
        """Count a failure; the broker log gets the first of an episode, not every retry's."""
        self.failures[operation] += 1
        self.last_error[operation] = f"{type(exc).__name__}: {exc}"
        if self.failing_since_ns[operation] is None:
            self.failing_since_ns[operation] = time.time_ns()
            log.error("event log: %s failed: %s (counted in /healthz log.writes; logged again when it works)",
                      operation, self.last_error[operation])

    def succeeded(self, operation: str) -> None:
        if self.failing_since_ns[operation] is not None:
            since = self.failing_since_ns[operation]
            self.failing_since_ns[operation] = None
            log.warning("event log: %s works again after %.1f s and %d failures", operation,
                        (time.time_ns() - since) / 1e9, self.failures[operation])

    def figures(self) -> dict[str, Any]:
        """``/healthz`` ``log.writes``: per operation, failures so far, failing since (ns or null), last error."""
        return {op: {"failures": self.failures[op], "failing_since_ns": self.failing_since_ns[op],
                     "last_error": self.last_error[op]} for op in OPERATIONS}
