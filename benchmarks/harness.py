"""Repeated, interleaved measurement: medians, percentiles and ratios.

The machine these numbers come from is shared: another process can take a
core for a few seconds at any time. Two habits make the results usable
anyway:

* every figure is the median of several repetitions, never a single run;
* a subject is compared with its baseline *measured in the same run*, with
  baseline and subject repetitions interleaved (B S B S ... and alternating
  which goes first), so a noisy minute hurts both sides alike and the ratio
  stays honest.

This is a few dozen lines rather than pyperf because pyperf calibrates and
spawns workers per benchmark (minutes per figure), does not interleave two
subjects, and cannot drive multi-process loads such as a broker with
publishers.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of an already sorted list, nearest-rank."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize(samples: list[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean of a list of samples (any unit)."""
    values = sorted(samples)
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": values[-1],
        "mean": statistics.fmean(values),
    }


@dataclass
class Repeated:
    """The repetitions of one measured figure and their median."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else math.nan

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the repetitions were."""
        if len(self.values) < 2 or not self.median:
            return 0.0
        return (max(self.values) - min(self.values)) / self.median

    def as_dict(self) -> dict[str, Any]:
        return {"median": self.median, "runs": self.values, "spread": round(self.spread, 4)}


def interleave(
    runs: dict[str, Callable[[], float]], repeats: int, warmup: bool = True
) -> dict[str, Repeated]:
    """Run each named measurement ``repeats`` times, interleaved.

    Each callable returns one figure (e.g. seconds per operation). The order
    of the callables rotates every round, so none always runs first. A warm-up
    round (results discarded) pays for imports, JIT-like caches and page faults.
    """
    names = list(runs)
    results = {name: Repeated() for name in names}
    if warmup:
        for name in names:
            runs[name]()
    for round_no in range(repeats):
        shift = round_no % len(names)
        order = names[shift:] + names[:shift]
        for name in order:
            gc.collect()
            results[name].add(runs[name]())
    return results


def ratio(subject: float, baseline: float) -> float:
    """subject / baseline, NaN when the baseline is missing or zero."""
    if not baseline or math.isnan(baseline) or math.isnan(subject):
        return math.nan
    return subject / baseline


def per_call_ns(fn: Callable[[], Any], calls: int) -> float:
    """Mean wall time of one call of ``fn`` over ``calls`` calls, in ns."""
    t0 = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - t0) / calls


def timer_overhead_ns(samples: int = 20000) -> float:
    """Median cost of one ``perf_counter_ns()`` pair: what per-call timing adds."""
    clock = time.perf_counter_ns
    values = []
    for _ in range(samples):
        t0 = clock()
        values.append(clock() - t0)
    values.sort()
    return float(percentile(values, 50))


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.02, message: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(message or f"condition not met within {timeout}s")
        time.sleep(interval)
