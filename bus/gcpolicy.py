"""Garbage-collector settings for the broker's long-running processes.

Why: CPython's cyclic collector runs every 700 net container allocations and,
every so often, walks *every* tracked object.  The consumer process keeps tens
of thousands of live containers (the tail cache's decoded events with their
``actor``/``attrs``/``source`` dicts, open traces, recently closed trace keys)
and allocates a few dozen per event, so at 30k events/s the collector walked
that heap again and again: a quarter to a third of the process's CPU (perf:
``gc_collect_main``/``visit_decref``/``visit_reachable``; 31 -> 22 us of CPU per
event at 30k events/s with these settings; benchmarks/FINDINGS.md section 7).
Almost nothing the broker allocates is cyclic; events, rows and replies are
freed by reference counting the moment a batch is done.

What :func:`tune` does, once startup is over:

* ``gc.freeze()``: what startup built (modules, config, plugins, compiled
  checks) lives as long as the process and is never looked at again;
* ``GEN0_THRESHOLD`` = 100,000 allocations between young collections instead
  of 700: a batch's transient containers die before a collection sees them.
  At ~50 container allocations per event that is one young collection per
  ~2,000 events (~70 ms at 30k events/s);
* ``GEN1_THRESHOLD`` = 20 and ``GEN2_THRESHOLD`` = 100: full collections at
  most once per 100 x 20 x 100,000 = 200M allocations (a few minutes at full
  load).  Cyclic garbage (an exception's traceback, say) is still collected,
  later; memory stays bounded because collections are counted in allocations.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 100_000
GEN1_THRESHOLD = 20
GEN2_THRESHOLD = 100


def tune() -> None:
    """Freeze what exists now and space collections out (see the module docstring)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
