"""Item 7: where the time goes on the hot paths.

Two tools in one module:

* :func:`run` (the ``profile`` section of ``python -m benchmarks``): the
  per-event cost of each stage the broker's ingest performs on every event,
  measured in-process on the benchmark's own events: decoding the PUB body,
  ``validate_event``, re-encoding the validated event, and the sqlite append
  (dedup SELECT + INSERT in 1000-row transactions, WAL, synchronous=NORMAL,
  UNIQUE index on id, like ``bus/log/sqlite.py``); plus the Python SDK's
  ``emit()`` under cProfile, top functions by own time. The sum of the
  ingest stages is the single-thread ceiling of the current design.
* ``python -m benchmarks.profile ingest [--seconds N]``: samples a real broker
  under load with py-spy (``pip install py-spy``; not a project dependency)
  and prints the top functions by own and inclusive time.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import os
import pstats
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgpack

from secbus_sdk import wire
from secbus_sdk.event import validate_event

from . import components
from .config import Config
from .payloads import make_event, pub_body
from .result import Section, Table


def _per_event_us(fn, n: int) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) / n * 1e6


def ingest_stages(n: int = 20000, repeats: int = 3) -> dict[str, float]:
    """Median per-event microseconds of each ingest stage."""
    events = [make_event() for _ in range(n)]
    bodies = [pub_body(events[i:i + 100], i) for i in range(0, n, 100)]
    decoded = [e for b in bodies for e in wire.decode_frames([wire.MAGIC, wire.PUB, b])[1]["events"]]
    packed = [wire.pack_ordered(validate_event(e)) for e in decoded]

    def decode():
        for b in bodies:
            wire.decode_frames([wire.MAGIC, wire.PUB, b])

    def decode_keeping_bytes():
        # msgpack.Unpacker.tell() gives each event's byte range: store the bytes as received
        for b in bodies:
            u = msgpack.Unpacker(raw=False)
            u.feed(b)
            for _ in range(u.read_map_header()):
                if u.unpack() == "events":
                    for _ in range(u.read_array_header()):
                        start = u.tell()
                        u.unpack()
                        b[start:u.tell()]
                else:
                    u.unpack()

    def validate():
        for e in decoded:
            validate_event(e)

    def repack():
        for e in decoded:
            wire.pack_ordered(e)

    def sqlite_append():
        d = tempfile.mkdtemp(prefix="secbus-bench-sqlite-")
        try:
            c = sqlite3.connect(os.path.join(d, "events.db"), isolation_level=None)
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=NORMAL")
            c.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, received_ns INTEGER, publisher TEXT,"
                      " tenant TEXT, ts INTEGER, type TEXT, trace_id TEXT, body BLOB)")
            c.execute("CREATE UNIQUE INDEX events_id ON events (id)")
            seq = 0
            for i in range(0, n, 1000):
                chunk = decoded[i:i + 1000]
                ids = [e["id"] for e in chunk]
                c.execute(f"SELECT id FROM events WHERE id IN ({','.join('?' * len(ids))})", ids).fetchall()
                rows = []
                for e, p in zip(chunk, packed[i:i + 1000]):
                    seq += 1
                    rows.append((seq, e["id"], 1, "anonymous", "default", e["ts"], e["type"], e["trace_id"], p))
                c.execute("BEGIN IMMEDIATE")
                c.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)", rows)
                c.execute("COMMIT")
            c.close()
        finally:
            shutil.rmtree(d, ignore_errors=True)

    stages = {"decode PUB body (wire.decode_frames)": decode, "validate_event": validate,
              "re-encode validated event (wire.pack_ordered)": repack,
              "sqlite dedup + append (1000-row transactions)": sqlite_append,
              "alternative: decode keeping each event's bytes (Unpacker.tell)": decode_keeping_bytes}
    out: dict[str, list[float]] = {k: [] for k in stages}
    for _ in range(repeats):
        for name, fn in stages.items():
            out[name].append(_per_event_us(fn, n))
    return {k: sorted(v)[len(v) // 2] for k, v in out.items()}


def emit_profile(calls: int = 30000) -> list[tuple[str, float, float]]:
    """cProfile of the Python SDK's emit() (bus down, big queue): (function, own %, cumulative %)."""
    Client = components.python_client()
    if Client is None:
        return []
    from .rsyslog import free_port

    spool = components.scratch("spool")
    client = Client(endpoint=f"tcp://127.0.0.1:{free_port()}", service="bench-profile", spool_dir=spool,
                    queue_size=calls + 10)
    actor = {"key_id": "k-1", "user": "alice"}
    attrs = {"algorithm": "ed25519", "message_bytes": 256}
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        client.emit("authn.signature.verify", "success", actor=actor, resource="doc/1", attrs=attrs)
    prof.disable()
    client.close(0.5)
    stats = pstats.Stats(prof)
    total = sum(v[2] for v in stats.stats.values()) or 1.0
    root = max(v[3] for v in stats.stats.values()) or 1.0
    rows = []
    for (path, line, func), (cc, nc, tt, ct, callers) in stats.stats.items():
        rows.append((f"{func} ({Path(path).name}:{line})", tt / total * 100, ct / root * 100))
    rows.sort(key=lambda r: -r[1])
    return rows[:10]


def run(cfg: Config) -> Section:
    sec = Section("profile", "Where the time goes: ingest stages per event, and emit() under cProfile")
    n = 2000 if cfg.mode == "tiny" else 20000
    stages = ingest_stages(n, 1 if cfg.mode == "tiny" else 3)
    current = [k for k in stages if not k.startswith("alternative")]
    total = sum(stages[k] for k in current)
    t = Table(f"Broker ingest stages, per event, in one thread ({n:,} events of ~390 bytes, median of runs)",
              ["stage", "us/event", "share"])
    for k in current:
        t.rows.append([k, stages[k], f"{stages[k] / total * 100:.0f}%"])
    t.rows.append(["sum: single-thread ceiling", total, f"{1e6 / total:,.0f} events/s"])
    alt = [k for k in stages if k.startswith("alternative")][0]
    t.rows.append([alt, stages[alt], "replaces decode + re-encode"])
    sec.tables.append(t)
    sec.figures["ingest_stages_us"] = stages
    sec.figures["ingest_single_thread_ceiling_events_per_s"] = 1e6 / total
    rows = emit_profile(3000 if cfg.mode == "tiny" else 30000)
    if rows:
        sec.tables.append(Table("Python emit() under cProfile (bus down), top functions by own time",
                                ["function", "own time %", "cumulative % of emit"], [list(r) for r in rows]))
        sec.figures["emit_profile"] = rows
    sec.notes.append("cProfile inflates per-call costs; read the shares, not the absolute times")
    return sec


# --------------------------------------------------------------------------
# py-spy on a live broker


def _pyspy() -> str | None:
    return os.environ.get("PY_SPY") or shutil.which("py-spy")


def top_functions(raw_path: Path, limit: int = 20) -> tuple[list, list, int]:
    own: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    total = 0
    for line in raw_path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    return own.most_common(limit), incl.most_common(limit), total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    parser.add_argument("target", choices=["ingest", "stages", "emit"])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.target == "stages":
        for k, v in ingest_stages().items():
            print(f"{v:8.2f} us/event  {k}")
        return 0
    if args.target == "emit":
        for name, own, cum in emit_profile():
            print(f"{own:6.1f}% own {cum:6.1f}% cum  {name}")
        return 0
    spy = _pyspy()
    if not spy:
        print("py-spy not found: pip install py-spy (or set PY_SPY=/path/to/py-spy)", file=sys.stderr)
        return 2
    from .brokers import bench_broker
    from .loadgen import broker_ingest_rate

    raw = Path(tempfile.mkdtemp(prefix="secbus-bench-pyspy-")) / "ingest.raw"
    with bench_broker(handlers=[]) as broker:
        rec = subprocess.Popen([spy, "record", "-p", str(broker.proc.pid), "-d", str(int(args.seconds)), "-f", "raw",
                                "-o", str(raw), "--nonblocking", "-r", "200"])
        load = broker_ingest_rate(broker.ingest, 2, 100, int(args.seconds * 20000), args.seconds + 20)
        rec.wait(args.seconds + 60)
    print(f"load: {load['events']:,} events at {load['events_per_s']:,.0f} events/s")
    own, incl, total = top_functions(raw)
    print(f"{total} samples\n-- own time")
    for f, c in own:
        print(f"{c / total * 100:5.1f}%  {f}")
    print("-- inclusive")
    for f, c in incl:
        print(f"{c / total * 100:5.1f}%  {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
