"""Sizes of every benchmark in each mode.

``quick`` finishes in a few minutes on a 2-core machine and is what ``make
bench`` runs; ``full`` runs longer, with more repetitions, the full 1M-event
backlog and a 5-minute soak. ``tiny`` exists for the test suite's smoke test
(proves the machinery runs; its figures mean nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Config:
    mode: str
    repeats: int                      # interleaved repetitions per figure
    verify_iterations: int            # Ed25519 verifications per repetition
    emit_calls: int                   # emit() calls timed per repetition
    emit_burst: int                   # emits between flushes (stays under the SDK queue size)
    syslog_events: int                # events per repetition in the syslog comparison
    ingest_events_per_publisher: int  # events each publisher sends per repetition
    ingest_time_limit: float          # seconds, per ingest repetition
    ingest_repeats: int = 0           # interleaved repetitions for ingest (0: same as repeats)
    e2e_rates: tuple[int, ...] = (1000, 10000, 50000)
    e2e_duration: float = 3.0         # seconds at each fixed rate
    ack_rate: int = 20000             # publish-to-ACK measured at this rate
    ladder_rates: tuple[int, ...] = (2500, 5000, 10000, 20000, 40000, 60000, 80000, 100000)
    ladder_bisect: int = 1            # bisection steps after the first unbounded rate
    alert_trials: int = 10
    backlog_events: int = 1_000_000
    soak_seconds: float = 60.0
    soak_kill_interval: float = 10.0
    batches: tuple[int, ...] = (1, 10, 100)
    publishers: tuple[int, ...] = (1, 2)
    only: tuple[str, ...] = field(default_factory=tuple)


MODES = {
    "tiny": Config(mode="tiny", repeats=1, verify_iterations=200, emit_calls=500, emit_burst=250,
                   syslog_events=300, ingest_events_per_publisher=2000, ingest_time_limit=10,
                   e2e_rates=(500,), e2e_duration=1.0, ack_rate=1000, ladder_rates=(1000,), ladder_bisect=0,
                   alert_trials=2, backlog_events=5000, soak_seconds=8, soak_kill_interval=3,
                   batches=(10,), publishers=(1,)),
    "quick": Config(mode="quick", repeats=5, verify_iterations=20000, emit_calls=50000, emit_burst=2000,
                    syslog_events=20000, ingest_events_per_publisher=40000, ingest_time_limit=15, ingest_repeats=3,
                    e2e_duration=2.0, backlog_events=200_000, soak_seconds=60, soak_kill_interval=12),
    "full": Config(mode="full", repeats=9, verify_iterations=50000, emit_calls=200000, emit_burst=2000,
                   syslog_events=100000, ingest_events_per_publisher=200000, ingest_time_limit=60,
                   e2e_duration=10.0, ladder_bisect=3,
                   alert_trials=30, backlog_events=1_000_000, soak_seconds=300, soak_kill_interval=30),
}


def get(mode: str, **overrides) -> Config:
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
    return replace(MODES[mode], **{k: v for k, v in overrides.items() if v is not None})
