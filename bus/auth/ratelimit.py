"""Events per second per publisher: one token bucket each.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per
second; a PUB of n events takes n tokens or is answered ``ERR overloaded``
with ``retry_after_ms``, the time until n tokens are back (so a well-behaved
SDK that waits that long succeeds).  A whole batch is taken or refused, never
split, so the ACK accounting stays simple.  A batch larger than ``burst`` could
never pass, so the bucket is at least as deep as the largest allowed batch.

Memory: one small object per publisher seen; publishers are allow-listed
names when CURVE is on (bounded by the list) and ``anonymous`` otherwise, and
idle buckets are forgotten (``max_idle_s``) so the table cannot grow without
bound either way.  Hand-written because it is twenty lines and sits on the
ingest hot path; the usual libraries are asyncio- or Redis-shaped.
"""

from __future__ import annotations

import math
import time
from typing import Callable


class RateLimiter:
    """Token buckets keyed by publisher name; ``rate <= 0`` disables limiting."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic, max_idle_s: float = 300.0):
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(rate, 1.0))
        self.clock = clock
        self.max_idle_s = max_idle_s
        self._buckets: dict[str, list[float]] = {}  # name -> [tokens, last refill time]
        self._last_sweep = clock()
        self.refused = 0

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, publisher: str, n: int) -> int:
        """Take ``n`` tokens for ``publisher``: 0 when allowed, else the ms to wait before retrying."""
        if self.rate <= 0 or n <= 0:
            return 0
        now = self.clock()
        bucket = self._buckets.get(publisher)
        if bucket is None:
            bucket = self._buckets[publisher] = [self.burst, now]
        else:
            bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
        if now - self._last_sweep > self.max_idle_s:
            self._sweep(now)
        need = min(float(n), self.burst)
        if bucket[0] >= need:
            bucket[0] -= need
            return 0
        self.refused += 1
        return max(1, math.ceil((need - bucket[0]) / self.rate * 1000))

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        for name in [k for k, (_, last) in self._buckets.items() if now - last > self.max_idle_s]:
            del self._buckets[name]
