"""``python -m benchmarks --mode quick|full``: run every section, write results.

Each section runs on its own (a fresh broker where it needs one) and a
section that fails or whose component is missing is reported as such; the
others still run. ``--only`` picks sections, ``--out`` another results
directory (the smoke test uses a temp dir).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

from . import config as configmod
from . import machine, report
from .result import Section

RESULTS = Path(__file__).resolve().parent / "results"


def _sections():
    # imported lazily so --help works even when a section's imports break
    from . import e2e, emit_latency, ingest, memory, overhead, profile, soak, syslog_compare
    from .brokers import bench_broker

    def with_broker(mod, config=None, handlers=None):
        def run(cfg):
            with bench_broker(config, handlers if handlers is not None else []) as b:
                return mod.run(cfg, b)
        return run

    return {
        "overhead": with_broker(overhead),
        "emit": emit_latency.run,
        "syslog": with_broker(syslog_compare),
        "ingest": with_broker(ingest, config=ingest.BROKER_CONFIG) if hasattr(ingest, "BROKER_CONFIG") else with_broker(ingest),
        "e2e": e2e.run,
        "memory": memory.run,
        "soak": soak.run,
        "profile": profile.run,
    }


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=RESULTS.parent.parent, timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="quick", choices=sorted(configmod.MODES))
    parser.add_argument("--only", nargs="*", default=None, help="sections to run (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory (default: benchmarks/results)")
    parser.add_argument("--soak-seconds", type=float, default=None, help="soak duration (default: 60 quick, 300 full)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repetitions per figure")
    args = parser.parse_args(argv)
    cfg = configmod.get(args.mode, soak_seconds=args.soak_seconds, repeats=args.repeats)
    available = _sections()
    names = args.only or list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        parser.error(f"--only: unknown section(s) {', '.join(unknown)}; known: {', '.join(available)}")
    started = dt.datetime.now(dt.timezone.utc)
    meta = {"mode": cfg.mode, "started": started.strftime("%Y-%m-%d %H:%M:%S UTC"), "commit": _commit(),
            "machine": machine.describe(), "config": {k: v for k, v in cfg.__dict__.items()}}
    sections: list[Section] = []
    for name in names:
        print(f"[bench] {name} ...", flush=True)
        t0 = time.monotonic()
        try:
            sec = available[name](cfg)
        except Exception as exc:  # noqa: BLE001 - one broken section must not lose the others
            sec = Section(name, name, status="error", reason=f"{type(exc).__name__}: {exc}")
            sec.notes.append("traceback: " + " | ".join(traceback.format_exc().strip().splitlines()[-6:]))
        sec.seconds = time.monotonic() - t0
        sections.append(sec)
        print(f"[bench] {name}: {sec.status} {sec.reason} ({sec.seconds:.0f} s)", flush=True)
        # write after every section so an interrupted run keeps what it measured
        finished = dt.datetime.now(dt.timezone.utc)
        meta.update(finished=finished.strftime("%Y-%m-%d %H:%M:%S UTC"), seconds=(finished - started).total_seconds(),
                    load_average_now=[round(x, 2) for x in os.getloadavg()])
        md, js = report.write(args.out, meta, sections)
    print(f"[bench] wrote {md} and {js}")
    return 1 if any(s.status == "error" for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
