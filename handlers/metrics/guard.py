"""The cardinality guard: bounded label values per instrument and label.

Every distinct label value makes a new time series in Prometheus; an event
field that can take unbounded values (a tenant per customer, a service name
per deployment, a flood of made-up event types) would grow the broker's
memory and the monitoring system's storage without bound.  The guard lets
the first ``cap`` distinct values of each label of each instrument through
and folds every later one into ``other`` (counted in ``folded``), so totals
stay right while the number of series stays bounded.
"""

from __future__ import annotations

import threading
from collections import defaultdict

OTHER = "other"


class CardinalityGuard:
    def __init__(self, cap: int = 100):
        self.cap = cap
        self._seen: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._lock = threading.Lock()  # observable callbacks run on the HTTP thread
        self.folded: dict[tuple[str, str], int] = defaultdict(int)

    def value(self, instrument: str, label: str, value: object) -> str:
        text = "" if value is None else str(value)
        key = (instrument, label)
        seen = self._seen[key]
        if text in seen:
            return text
        with self._lock:
            if text in seen:
                return text
            if len(seen) < self.cap:
                seen.add(text)
                return text
            self.folded[key] += 1
            return OTHER

    def labels(self, instrument: str, labels: dict[str, object]) -> dict[str, str]:
        return {k: self.value(instrument, k, v) for k, v in labels.items()}
