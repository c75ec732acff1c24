"""The ingest thread's cost per event with and without the msgspec fast path.

``python -m benchmarks.fastpath [--events N] [--batch B] [--repeats R]``
runs the broker's own :class:`secbus.ingest.requests.RequestHandler` on the
benchmark's PUB bodies (``payloads.py``: ~390-byte events, canonical msgpack),
in one thread, with the fast path (``bus/ingest/fastcheck.py``) and with it
switched off (its ``split_pub`` answering "not sure" for every body, which is
exactly the code path before it existed), alternating the two R times so that
a shared, noisy machine affects both alike.  It reports microseconds per
event (decode, validation, stamping; no sqlite append) and the per-stage
split of the fast path.  Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time

import msgspec
import zmq

from secbus.ingest import fastcheck, requests
from secbus_sdk import wire

from .payloads import make_event, pub_body


def _us_per_event(fn, n: int) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) / n * 1e6


def handle_costs(events: int = 20000, batch: int = 100, repeats: int = 7) -> dict[str, list[float]]:
    """Per-event microseconds of ``RequestHandler.handle``, each repetition, both ways."""
    bodies = [pub_body([make_event() for _ in range(batch)], i) for i in range(events // batch)]
    total = len(bodies) * batch
    frames = [[zmq.Frame(b"r"), zmq.Frame(wire.MAGIC), zmq.Frame(wire.PUB), zmq.Frame(b)] for b in bodies]
    handler = requests.RequestHandler(wire.DEFAULT_LIMITS, collections.Counter(), lambda: None)
    real = fastcheck.split_pub

    def run(fast: bool) -> float:
        requests.fastcheck.split_pub = real if fast else (lambda frames, limits: None)
        out: list = []
        try:
            cost = _us_per_event(lambda: [handler.handle(f, 1, out) for f in frames], total)
        finally:
            requests.fastcheck.split_pub = real
        if len(out) != total:
            raise RuntimeError(f"expected {total} stored events, got {len(out)}")
        return cost

    results: dict[str, list[float]] = {"before (split_pub + validate_event)": [], "fast path": []}
    for _ in range(repeats):
        results["before (split_pub + validate_event)"].append(run(False))
        results["fast path"].append(run(True))
    return results


def fast_stages(events: int = 20000) -> dict[str, float]:
    """Per-event microseconds of the fast path's parts (one pass each)."""
    checker = fastcheck.checker_for(wire.DEFAULT_LIMITS)
    bodies = [pub_body([make_event() for _ in range(100)], i) for i in range(events // 100)]
    spans = [bytes(raw) for b in bodies for raw in checker.pub(b).events]
    n = len(spans)
    return {
        "PUB envelope (events: list[Raw]) + bytes per event": _us_per_event(lambda: [[bytes(r) for r in checker.pub(b).events] for b in bodies], n),
        "typed check -> validated dict (fastcheck.fast_validate)": _us_per_event(lambda: [checker.event(s) for s in spans], n),
        "for scale: untyped msgspec decode of the event": _us_per_event(lambda: [msgspec.msgpack.decode(s) for s in spans], n),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fastpath", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    results = handle_costs(args.events, args.batch, args.repeats)
    print(f"RequestHandler.handle, us/event ({args.repeats} interleaved runs of {args.events} events, batch {args.batch}):")
    for name, values in results.items():
        print(f"  {name:38s} median {statistics.median(values):6.2f}  min {min(values):6.2f}  max {max(values):6.2f}")
    before, after = (statistics.median(v) for v in results.values())
    print(f"  speedup (medians): {before / after:.2f}x")
    print("fast path stages, us/event:")
    for name, value in fast_stages(args.events).items():
        print(f"  {name:58s} {value:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
