"""Item 1b: the cost of one ``emit()`` call, p50 and p99, in both SDKs, with
the bus up and with the bus down (the SDK spooling to disk).

Every call is timed on its own (``perf_counter_ns`` / ``hrtime.bigint``);
the cost of the clock pair itself is measured and reported beside the
figures (it is included in them, so they are slightly pessimistic). Calls
come in bursts that fit the SDK's queue; between bursts the benchmark waits
(untimed) for the sender to catch up, so no call is ever a cheap "queue full,
dropped" call: the client's ``dropped`` counter is reported to prove it.
"""

from __future__ import annotations

import time

from . import components
from .brokers import bench_broker
from .config import Config
from .harness import summarize, timer_overhead_ns, wait_until
from .overhead import run_node
from .result import Section, Table, Target
from .rsyslog import free_port

TARGET_PY_P50_US = 3.0
TARGET_NODE_P50_US = 2.0
TARGET_P99_US = 25.0

ACTOR = {"key_id": "k-1", "user": "alice"}
ATTRS = {"algorithm": "ed25519", "message_bytes": 256}


def python_emit_samples(client, calls: int, burst: int, bus_up: bool) -> list[int]:
    clock = time.perf_counter_ns
    emit = client.emit
    samples = []
    append = samples.append
    for _ in range(min(calls, 2000)):  # warm-up
        emit("authn.signature.verify", "success", actor=ACTOR, resource="doc/1", attrs=ATTRS)
    _settle(client, bus_up, burst)
    done = 0
    while done < calls:
        k = min(burst, calls - done)
        for _ in range(k):
            t0 = clock()
            emit("authn.signature.verify", "success", actor=ACTOR, resource="doc/1", attrs=ATTRS)
            append(clock() - t0)
        done += k
        _settle(client, bus_up, burst)
    return samples


def _settle(client, bus_up: bool, burst: int) -> None:
    if bus_up:
        client.flush(30.0)
    else:
        wait_until(lambda: client.stats()["queued"] == 0, timeout=30, interval=0.005,
                   message=f"the SDK did not move queued events to its spool within 30 s: {client.stats()}")


def run(cfg: Config) -> Section:
    sec = Section("emit", "emit() per-call cost, bus up and bus down (spooling)")
    table = Table("Per call, all samples of the run", ["SDK", "bus", "p50 (us)", "p90 (us)", "p99 (us)", "max (us)", "calls", "dropped"])
    sec.tables.append(table)
    clock_ns = timer_overhead_ns()
    sec.figures["python_clock_pair_ns"] = clock_ns
    Client = components.python_client()
    have_broker = components.broker_support() is not None
    if Client is None:
        sec.status = "partial"
        sec.notes.append("Python emit not measured: secbus_sdk.Client is not available yet")
    else:
        for bus_up in (True, False):
            label = "up" if bus_up else "down (spooling)"
            if bus_up and not have_broker:
                sec.notes.append("Python bus-up figures skipped: no broker")
                continue
            with (bench_broker() if bus_up else _nothing()) as broker:
                endpoint = broker.ingest if bus_up else f"tcp://127.0.0.1:{free_port()}"
                client = Client(endpoint=endpoint, service="bench-emit", spool_dir=components.scratch("spool"))
                try:
                    samples = python_emit_samples(client, cfg.emit_calls, cfg.emit_burst, bus_up)
                    stats = client.stats()
                finally:
                    client.close(10.0 if bus_up else 0.5)
            s = summarize([x / 1000 for x in samples])
            key = "python_up" if bus_up else "python_down"
            sec.figures[key] = {"per_call_us": s, "client_stats": stats}
            table.rows.append(["Python", label, s["p50"], s["p90"], s["p99"], s["max"], s["n"], stats.get("dropped")])
            if bus_up:
                sec.targets.append(Target("Python emit() p50 (bus up)", TARGET_PY_P50_US, s["p50"], "us", False,
                                          f"includes ~{clock_ns / 1000:.2f} us of clock reads"))
                sec.targets.append(Target("Python emit() p99 (bus up)", TARGET_P99_US, s["p99"], "us", False))
    if not components.node():
        sec.notes.append("Node is not installed")
    elif not components.node_client_available():
        sec.status = "partial"
        sec.notes.append("Node emit not measured: the Node SDK Client is not available yet")
    else:
        for bus_up in (True, False):
            label = "up" if bus_up else "down (spooling)"
            if bus_up and not have_broker:
                continue
            with (bench_broker() if bus_up else _nothing()) as broker:
                endpoint = broker.ingest if bus_up else f"tcp://127.0.0.1:{free_port()}"
                try:
                    out = run_node({"mode": "emit", "calls": cfg.emit_calls, "burst": cfg.emit_burst, "busUp": bus_up,
                                    "endpoint": endpoint, "spoolDir": components.scratch("spool"),
                                    "sdkPath": str(components.SDK_JS)}, timeout=600)
                except Exception as exc:  # noqa: BLE001
                    sec.status = "partial"
                    sec.notes.append(f"Node emit ({label}) failed: {exc}")
                    continue
            us = {k: out[k] / 1000 for k in ("p50_ns", "p90_ns", "p99_ns", "max_ns")}
            sec.figures["node_up" if bus_up else "node_down"] = out
            table.rows.append(["Node", label, us["p50_ns"], us["p90_ns"], us["p99_ns"], us["max_ns"], out["calls"],
                               (out.get("stats") or {}).get("dropped")])
            if bus_up:
                sec.targets.append(Target("Node emit() p50 (bus up)", TARGET_NODE_P50_US, us["p50_ns"], "us", False,
                                          f"includes ~{out['clock_pair_ns'] / 1000:.2f} us of clock reads"))
    return sec


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
