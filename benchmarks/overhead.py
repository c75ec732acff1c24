"""Item 1a: what one emit() adds to real verification work.

The baseline is an Ed25519 verification of a 256-byte message, the kind of
check an application reports to secbus; the subject is the same verification
followed by one ``emit()``. Both are timed in the same process, interleaved,
over many iterations, and the figure is the median ratio minus one: the
overhead a user pays. Python uses ``cryptography``; Node uses ``node:crypto``.

The emitting loop runs in bursts separated by ``flush()`` so the SDK's queue
never fills (a full queue would drop events and flatter the figure); the time
spent in ``flush()`` is excluded, but the sender thread's work during the
burst (it competes for the GIL) is included: that is part of the real cost.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from . import components
from .config import Config
from .result import Section, Table, Target

TARGET_OVERHEAD = 0.05  # <= 5 %, aim 2 %
BLOCK = 500  # iterations per block: ~0.07 s of Ed25519 verification here


def _median(values: list[float]) -> float:
    values = [x for x in values if x is not None and x == x]
    return statistics.median(values) if values else float("nan")


def _add(sec: Section, table: Table, language: str, res: dict) -> None:
    key = "python" if language.startswith("Python") else "node"
    wall = _median(res["wall_ratio"]) - 1
    cpu = _median(res["cpu_ratio"]) - 1
    caller = _median(res["caller_cpu_ratio"]) - 1 if "caller_cpu_ratio" in res else None
    alone = _median(res["alone_wall_ns"])
    emit = _median(res["emit_wall_ns"])
    sec.figures[f"{key}_pairs"] = res
    sec.figures[f"{key}_overhead_wall"] = wall
    sec.figures[f"{key}_overhead_cpu"] = cpu
    sec.figures[f"{key}_overhead_caller_cpu"] = caller
    sec.figures[f"{key}_verify_ns"] = alone
    table.rows.append([language, alone / 1000, emit / 1000, f"{wall * 100:+.1f}%", f"{cpu * 100:+.1f}%",
                       "-" if caller is None else f"{caller * 100:+.1f}%", len(res["wall_ratio"])])
    split = "" if caller is None else f"; the calling thread's own CPU (emit() itself): {caller * 100:+.1f}%"
    sec.targets.append(Target(f"{language.split()[0]}: overhead of one emit() on Ed25519 verify (process CPU)",
                              TARGET_OVERHEAD * 100, cpu * 100, "%", False,
                              f"aim 2%; caller's loop alone: {wall * 100:+.1f}%{split}",
                              why="emit() run with caches cold from the verification, then the CPU of the SDK's sender "
                              "and ZeroMQ's I/O thread per event (FINDINGS.md 3, 11)"))


class Verifier:
    """A fixed key pair, message and signature; ``verify()`` raises on a bad one."""

    def __init__(self, size: int = 256):
        key = Ed25519PrivateKey.generate()
        self.message = os.urandom(size)
        self.signature = key.sign(self.message)
        self.public = key.public_key()

    def verify(self) -> None:
        self.public.verify(self.signature, self.message)


def paired_blocks(v: Verifier, client, iterations: int, block: int) -> dict:
    """Alternate blocks of ``block`` verifications alone and with one emit each.

    Each pair of neighbouring blocks gives a ratio; the median over all pairs
    cancels the slow drifts of a shared machine (a block is ~0.1 s). Two
    ratios per pair:

    * wall: the caller's loop, verify (+ emit) only;
    * cpu: the whole process's CPU time (every thread: the SDK's sender and
      ZeroMQ's I/O thread included) over the block *and* the ``flush()`` that
      sends what it emitted: the total a user's process pays per verification;
    * caller_cpu: the calling thread's own CPU time over the same span
      (``emit()`` itself, run with caches cold from the verification); the
      rest of ``cpu`` is the SDK's sender thread and ZeroMQ's I/O thread.
    """
    verify = v.verify
    emit = client.emit
    actor = {"key_id": "k-1", "user": "alice"}
    attrs = {"algorithm": "ed25519", "message_bytes": 256}
    wall, cpu, own = time.perf_counter_ns, time.process_time_ns, time.thread_time_ns

    def alone() -> tuple[int, int, int]:
        w0, c0, t0 = wall(), cpu(), own()
        for _ in range(block):
            verify()
        return wall() - w0, cpu() - c0, own() - t0

    def with_emit() -> tuple[int, int, int]:
        w0, c0, t0 = wall(), cpu(), own()
        for _ in range(block):
            verify()
            emit("authn.signature.verify", "success", actor=actor, resource="doc/invoices/2026-11", attrs=attrs)
        w1 = wall()
        client.flush(30.0)
        return w1 - w0, cpu() - c0, own() - t0

    alone(), with_emit()  # warm-up pair
    pairs = max(1, iterations // block)
    out = {"wall_ratio": [], "cpu_ratio": [], "caller_cpu_ratio": [], "alone_wall_ns": [], "emit_wall_ns": [],
           "alone_cpu_ns": [], "emit_cpu_ns": []}
    for i in range(pairs):
        if i % 2:
            e, a = with_emit(), alone()
        else:
            a, e = alone(), with_emit()
        out["wall_ratio"].append(e[0] / a[0])
        out["cpu_ratio"].append(e[1] / a[1] if a[1] else float("nan"))
        out["caller_cpu_ratio"].append(e[2] / a[2] if a[2] else float("nan"))
        out["alone_wall_ns"].append(a[0] / block)
        out["emit_wall_ns"].append(e[0] / block)
        out["alone_cpu_ns"].append(a[1] / block)
        out["emit_cpu_ns"].append(e[1] / block)
    return out


def verify_alone_ns(v: Verifier, n: int) -> float:
    verify = v.verify
    t0 = time.perf_counter_ns()
    for _ in range(n):
        verify()
    return (time.perf_counter_ns() - t0) / n


def run_node(options: dict, timeout: float) -> dict:
    proc = subprocess.run([components.node(), str(components.NODE_SCRIPT), json.dumps(options)],
                          capture_output=True, text=True, timeout=timeout, cwd=str(components.ROOT))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"node benchmark printed nothing (exit {proc.returncode}): {proc.stderr[-800:]}")
    out = json.loads(lines[-1])
    if "error" in out:
        raise RuntimeError(f"node benchmark failed: {out['error'][:800]}")
    return out


def run(cfg: Config, broker=None) -> Section:
    sec = Section("overhead", "SDK overhead on Ed25519 verification (256-byte message)")
    v = Verifier()
    n = cfg.verify_iterations
    table = Table(f"Per verification: alternating blocks of {BLOCK} iterations, medians over the pairs",
                  ["language", "verify alone (us)", "verify + emit (us)", "overhead, caller's loop (wall)",
                   "overhead, process CPU incl. sender", "of which the calling thread's CPU", "pairs"])
    sec.tables.append(table)

    # Python
    Client = components.python_client()
    if Client is not None and broker is not None:
        client = Client(endpoint=broker.ingest, service="bench-overhead",
                        spool_dir=components.scratch("spool"))
        try:
            res = paired_blocks(v, client, n, BLOCK)
        finally:
            sec.figures["python_client_stats"] = client.stats()
            client.close(10.0)
        _add(sec, table, "Python (cryptography)", res)
    else:
        alone = statistics.median(verify_alone_ns(v, n // cfg.repeats or 1) for _ in range(cfg.repeats))
        sec.figures["python_verify_ns"] = alone
        table.rows.append(["Python (cryptography)", alone / 1000, None, "-", "-", "-", "-"])
        sec.notes.append("Python verify + emit not measured: " +
                         ("secbus_sdk.Client is not available yet" if Client is None else "no broker"))

    # Node
    if not components.node():
        sec.notes.append("Node is not installed: Node figures skipped")
        return sec
    base = {"iterations": n, "repeats": cfg.repeats, "block": BLOCK, "sdkPath": str(components.SDK_JS)}
    try:
        if components.node_client_available() and broker is not None:
            out = run_node(dict(base, mode="overhead", endpoint=broker.ingest,
                                spoolDir=components.scratch("spool")), timeout=600)
            sec.figures["node_client_stats"] = out.pop("stats", None)
            _add(sec, table, "Node (node:crypto)", out)
        else:
            out = run_node(dict(base, mode="verify"), timeout=600)
            sec.figures["node_verify_ns"] = out["verify_ns"]
            table.rows.append(["Node (node:crypto)", out["verify_ns"]["median"] / 1000, None, "-", "-", "-", "-"])
            sec.notes.append("Node verify + emit not measured: " +
                             ("the Node SDK Client is not available yet" if broker is not None else "no broker"))
    except Exception as exc:  # noqa: BLE001 - report, keep the rest of the run
        sec.status = "partial"
        sec.notes.append(f"Node figures failed: {exc}")
    return sec
