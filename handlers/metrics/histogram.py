"""The verification-duration histogram, aggregated by the handler itself.

Why not an OpenTelemetry ``Histogram``: its ``record()`` costs ~7 us of CPU
per value in Python (a ``Measurement`` per call, attributes cleaned, copied
and hashed per call), which was ~90% of the metrics handler's cost and a
fifth of the consumer process's budget at the target rate.  A histogram
needs every value (each adds 1 to ``count``), so batching calls cannot help;
doing OpenTelemetry's explicit-bucket arithmetic here costs ~0.3 us a value.

What is kept exactly: the arithmetic of OpenTelemetry's
``ExplicitBucketHistogramAggregation`` (``bisect_left`` on the bounds, so a
value equal to a bound falls in that bound's bucket; a float sum added in
record order from 0; negative values ignored, as ``record()`` ignores them)
and the exposition its Prometheus reader prints (family, help, unit suffix,
sorted label names including the ``otel_scope_*`` labels, ``le`` strings).
``tests/handlers/test_metrics_unit.py`` compares the text with what
OpenTelemetry prints for the same values, so an exporter upgrade that
changes its output shows there.  (OpenTelemetry's 2000-series overflow is
not mirrored: the cardinality guard keeps this histogram far below it.)
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from typing import Iterable, Sequence

from prometheus_client.core import HistogramMetricFamily

#: The labels OpenTelemetry's Prometheus reader adds for the instrumentation scope.
SCOPE_LABELS = ("otel_scope_name", "otel_scope_schema_url", "otel_scope_version")


class Histogram:
    """Bucket counts and sums per label set, rendered as a Prometheus family.

    ``observe`` runs in the handler's runner thread, ``family`` in the HTTP
    thread of a scrape: one lock, taken once per batch and once per scrape."""

    def __init__(self, name: str, description: str, unit: str, bounds: Sequence[float],
                 label_names: Sequence[str], scope: str):
        self.name, self.description, self.unit = name, description, unit
        self.bounds = tuple(bounds)
        self.label_names = tuple(label_names)
        self.scope = scope
        self._series: dict[tuple[str, ...], list] = {}   # label values -> [bucket counts, sum]
        self._lock = threading.Lock()

    def observe(self, batches: Iterable[tuple[tuple[str, ...], list[float]]]) -> None:
        """Add each ``(label values, values)`` pair's values, in order."""
        bounds = self.bounds
        with self._lock:
            for labels, values in batches:
                if values and min(values) < 0:
                    values = [v for v in values if v >= 0]  # OpenTelemetry's record() drops them
                if not values:
                    continue
                series = self._series.get(labels)
                if series is None:
                    series = self._series[labels] = [[0] * (len(bounds) + 1), 0]
                counts, total = series
                for value in values:
                    total += value
                    counts[bisect_left(bounds, value)] += 1
                series[1] = total

    def family(self) -> HistogramMetricFamily | None:
        """The Prometheus family as OpenTelemetry's reader prints it; None before any value."""
        with self._lock:
            snapshot = [(labels, list(counts), total) for labels, (counts, total) in self._series.items()]
        if not snapshot:
            return None
        keys = sorted(SCOPE_LABELS + self.label_names)
        scope = {"otel_scope_name": self.scope, "otel_scope_schema_url": "", "otel_scope_version": ""}
        family = HistogramMetricFamily(self.name, self.description, labels=keys, unit=self.unit)
        for labels, counts, total in snapshot:
            values = {**scope, **dict(zip(self.label_names, labels))}
            cumulative, buckets = 0, []
            for bound, count in zip([*self.bounds, "+Inf"], counts):
                cumulative += count
                buckets.append((f"{bound}", cumulative))
            family.add_metric([values[k] for k in keys], buckets, total)
        return family
