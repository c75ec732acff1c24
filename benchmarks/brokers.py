"""Start a real broker for a benchmark: ``with bench_broker(config, handlers) as b``.

Thin wrapper over the shared test support (``tests/support/broker.py``), so
the benchmarks run the broker exactly as the tests do: ``secbus serve`` as a
subprocess on free loopback ports, in a fresh temp data dir, stopped (and
its directory removed) at the end. Yields None when the broker is not there.

A broker is several processes (ingest, the consumer process, the correlator,
the audit writer).  SIGKILL reaches the ingest process only; the others
notice and exit by themselves, the audit writer after the batch in hand,
which took up to a second at a quarter of a core after a 20,000 events/s
step.  So the end of a broker waits (up to ``LEFTOVER_WAIT`` s) for all its
processes to be gone: the next measurement must not share the two cores with
the last one's leftovers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

from . import components

LEFTOVER_WAIT = 5.0  # seconds


def _stat(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state first, then the parent
    pid), or ``None`` once the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()
    except OSError:
        return None


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process (empty where there is no /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        fields = _stat(entry) if entry.isdigit() else None
        if fields is not None:
            parents[int(entry)] = int(fields[1])
    return parents


def children(pid: int) -> list[int]:
    """The processes ``pid`` started directly."""
    return [child for child, ppid in _parents().items() if ppid == pid]


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``."""
    parents = _parents()
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        kids = [child for child, ppid in parents.items() if ppid == parent and child not in found]
        found.update(kids)
        frontier.extend(kids)
    return found


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"  # a zombie has exited


def wait_gone(pids: set[int], timeout: float = LEFTOVER_WAIT) -> set[int]:
    """Wait until none of ``pids`` runs any more; returns those still running at the deadline."""
    deadline = time.monotonic() + timeout
    left = {pid for pid in pids if _alive(pid)}
    while left and time.monotonic() < deadline:
        time.sleep(0.02)  # polling interval of a bounded wait
        left = {pid for pid in left if _alive(pid)}
    return left


@contextlib.contextmanager
def bench_broker(config: dict | None = None, handlers: list[str] | None = None, keep: bool = False,
                 kill: bool = False) -> Iterator:
    """``kill=True`` ends it with SIGKILL instead of SIGTERM: for a throw-away broker whose
    handlers are far behind (a clean stop would wait for them to drain)."""
    support = components.broker_support()
    if support is None:
        yield None
        return
    tmp = Path(tempfile.mkdtemp(prefix="secbus-bench-broker-"))
    broker = support.start_broker(tmp, config=config, handlers=handlers)
    try:
        yield broker
    finally:
        family = descendants(broker.proc.pid) if broker.proc is not None else set()
        try:
            broker.kill() if kill else broker.stop()
            wait_gone(family)
        finally:
            if not keep:
                shutil.rmtree(tmp, ignore_errors=True)
