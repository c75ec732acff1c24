"""CPU per event of each built-in handler's ``on_events``, in isolation, A/B.

``python -m benchmarks.handler_cost [--events N] [--batch B] [--repeats R]
[--base DIR] [--only audit,metrics,alerting]`` feeds N of the benchmark's
events (``payloads.py``, round-tripped through canonical msgpack and stamped
with ``seq``, ``received_ns``, ``publisher`` and ``tenant`` as the log hands
them to handlers) through each handler's ``on_events`` in batches of B (the
runner's default ``batch_size`` is 1000), and reports the thread's CPU time
(``time.thread_time``: fsync's kernel time included) per event.

Why in isolation: in the broker every consumer shares one process and one
interpreter lock, so a profile gives shares, not costs; here each handler's
cost is its own.  ``--base DIR`` names the ``handlers/`` directory of another
checkout (``git worktree add /tmp/base <commit>``): its modules are loaded as
a second package beside the installed ``secbus.handlers`` and the two are
run alternately R times on the same events, so a shared, noisy machine
affects both alike; medians are reported.  Speed is measured here, never
asserted in tests.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

from secbus.log.stored import decode_rows
from secbus_sdk import wire

from .payloads import make_event

HANDLERS = ("audit", "metrics", "alerting")


class App:
    """The documented ``app`` handle a plugin's ``startup`` gets, minus the broker."""

    def __init__(self, name: str, data_dir: Path, settings: dict | None = None):
        self.name, self.settings, self.data_dir = name, dict(settings or {}), data_dir
        self.logger = logging.getLogger(f"bench.{name}")
        self.alerts: list[dict] = []

    def add_route(self, method, path, handler) -> None:
        pass

    def publish_alert(self, alert: dict) -> None:
        self.alerts.append(alert)

    def stats(self) -> dict:
        return {}


def stored_events(n: int) -> tuple[list[tuple], list[dict]]:
    """``n`` benchmark events as the log's reader returns them: stored rows and dicts (key order included)."""
    now = time.time_ns()
    rows = [(seq, now, "anonymous", "default", wire.pack_ordered(make_event())) for seq in range(1, n + 1)]
    return rows, decode_rows(rows)


def load_handlers(directory: Path, alias: str) -> ModuleType:
    """Import the handler package in ``directory`` under the name ``alias``."""
    spec = importlib.util.spec_from_file_location(alias, directory / "__init__.py",
                                                  submodule_search_locations=[str(directory)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    spec.loader.exec_module(module)
    return module


def run_once(package: str, name: str, events: tuple[list[tuple], list[dict]], batch: int) -> float:
    """A fresh handler of ``package`` fed every event: CPU us/event of ``on_events``, given
    the arguments it declares (``stored`` rows, ``events`` dicts), as the runner does."""
    rows, dicts = events
    wanted = inspect.signature(importlib.import_module(f"{package}.{name}.plugin").handler.on_events).parameters
    plugin = importlib.import_module(f"{package}.{name}.plugin")
    with tempfile.TemporaryDirectory(prefix=f"secbus-cost-{name}-") as tmp:
        handler = type(plugin.handler)()
        handler.startup(App(name, Path(tmp)))
        try:
            t0 = time.thread_time()
            for i in range(0, len(rows), batch):
                given = {"events": dicts[i:i + batch], "stored": rows[i:i + batch]}
                handler.on_events(**{key: given[key] for key in wanted})
            cost = (time.thread_time() - t0) / len(rows) * 1e6
        finally:
            handler.shutdown()
    return cost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.handler_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--base", type=Path, help="handlers/ directory of the checkout to compare with")
    parser.add_argument("--only", default=",".join(HANDLERS))
    args = parser.parse_args(argv)
    variants = {"current": "secbus.handlers"}
    if args.base:
        load_handlers(args.base.resolve(), "secbus_base_handlers")
        variants = {"base": "secbus_base_handlers", **variants}
    events = stored_events(args.events)
    print(f"on_events CPU us/event: {args.events} events, batches of {args.batch}, "
          f"{args.repeats} alternated runs, load average {open('/proc/loadavg').read().split()[:3]}")
    for name in args.only.split(","):
        costs: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(args.repeats):
            for variant, package in variants.items():
                costs[variant].append(run_once(package, name, events, args.batch))
        line = "  ".join(f"{v} median {statistics.median(c):6.2f} (min {min(c):6.2f} max {max(c):6.2f})"
                         for v, c in costs.items())
        print(f"  {name:9s} {line}")
        if args.base:
            print(f"  {'':9s} base/current: {statistics.median(costs['base']) / statistics.median(costs['current']):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
