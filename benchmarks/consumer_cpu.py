"""CPU of the broker's consumer process per event, with the built-in handlers, A/B.

``python -m benchmarks.consumer_cpu [--rate R] [--duration S] [--repeats N] TREE...``
starts a fresh broker with the built-in handlers for each TREE (a directory
put first on ``PYTHONPATH`` holding a ``secbus`` package, e.g. a copy of
``bus/`` with ``handlers/`` inside it; ``-`` for the installed code), sends
R events/s for S seconds (``loadgen.paced_load``, the e2e benchmark's
publisher), waits until every handler's lag is 0, and reports the CPU time
(user + system, ``/proc/<pid>/stat``) the consumer process used per accepted
event, with each handler's maximum lag.  Trees are alternated N times so a
shared machine affects each alike; medians are reported.

Why: the e2e ladder says *whether* the handlers keep up; this says how much
CPU the consumer process (correlator, tail follower, feed, every handler)
spends per event, which is what decides how far the ladder can go on a
machine whose two cores also run ingest and the publishers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

from . import components
from .brokers import children, descendants, wait_gone
from .e2e import BUILTINS, LagSampler, batch_for, consumer_lags, publishers_for
from .harness import wait_until
from .loadgen import collect, paced_load

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def one_run(support, tree: str, rate: float, duration: float) -> tuple[float, dict]:
    tmp = tempfile.mkdtemp(prefix="secbus-consumer-cpu-")
    env = {} if tree == "-" else {"PYTHONPATH": tree}
    broker = support.start_broker(tmp, handlers=BUILTINS, env=env)
    try:
        consumers = wait_until(lambda: children(broker.proc.pid), timeout=20, interval=0.05)
        time.sleep(1.0)  # let startup settle before counting
        before = {pid: cpu_seconds(pid) for pid in consumers}
        sampler = LagSampler(broker)
        sampler.start()
        _, q, procs = paced_load(broker.ingest, rate, duration, batch_for(rate), publishers_for(rate))
        accepted = sum(r["accepted"] for r in collect(q, procs, duration + 60))
        wait_until(lambda: all(v == 0 for v in consumer_lags(broker).values()), timeout=120, interval=0.05)
        used = sum(cpu_seconds(pid) - before[pid] for pid in consumers)
        return used / accepted * 1e6, sampler.stop()
    finally:
        family = descendants(broker.proc.pid)
        broker.kill()
        wait_gone(family)  # the next sample must not share the cores with this broker's leftovers
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.consumer_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("trees", nargs="+", help="PYTHONPATH entries holding a secbus package; - for the installed one")
    args = parser.parse_args(argv)
    support = components.broker_support()
    costs: dict[str, list[float]] = {t: [] for t in args.trees}
    for _ in range(args.repeats):
        for tree in args.trees:
            cost, lags = one_run(support, tree, args.rate, args.duration)
            costs[tree].append(cost)
            load = open("/proc/loadavg").read().split()[0]
            print(f"{tree}: {cost:.1f} us/event, max lag {lags}, load {load}", flush=True)
    print(f"consumer-process CPU per event at {args.rate:,.0f} events/s for {args.duration:g} s (medians):")
    for tree, values in costs.items():
        print(f"  {tree}: {statistics.median(values):.1f} us/event ({', '.join(f'{v:.1f}' for v in values)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
