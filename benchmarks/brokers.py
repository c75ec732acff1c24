"""Start a real broker for a benchmark: ``with bench_broker(config, handlers) as b``.

Thin wrapper over the shared test support (``tests/support/broker.py``), so
the benchmarks run the broker exactly as the tests do: ``secbus serve`` as a
subprocess on free loopback ports, in a fresh temp data dir, stopped (and
its directory removed) at the end. Yields None when the broker is not there.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from . import components


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
        try:
            broker.kill() if kill else broker.stop()
        finally:
            if not keep:
                shutil.rmtree(tmp, ignore_errors=True)
