"""The correlator in a process of its own, and its stand-in in the consumer process.

Why: in the consumer process the correlator shared one interpreter lock with
the tail follower, the feed and every handler thread.  Under load it got a
quarter of that lock and fell behind while the handlers kept up (at 35,000
events/s it was 94,000 events behind after 10 s; benchmarks/FINDINGS.md 10),
so traces reached ``on_trace`` late.  Here it has a lock, and a core, to itself.

Data flow::

    consumer process                              correlator process
    from ingest: committed events ---("rows", payload), ("head", n)--->
                                                  tail follower -> its own tail cache
                                                  -> CorrelatorRunner: stores closed
                                                  traces (state.db)
    traces tail + Wakeup <---("traces", rows)---- after each commit
    /healthz, retention floors <--("health", h)-- every 0.2 s and at the end

The runner is the same :class:`~.correlator.CorrelatorRunner` (replay after a
restart, deduplication of stored traces, downtime forgiveness) behind the same
:class:`~.tail.TailFollower` as the consumer process's: the committed events
ingest hands over are passed on as they came (one pickled payload per commit,
not decoded here) and what did not come that way is read from the log.  Its log
is wrapped so each stored trace's full body (events inline) also comes back to
the consumer process's tail cache.

Messages (``multiprocessing.connection``, pickled tuples; both ends are this module)::

    consumer -> correlator   ("open", config, log_level)   first
                             ("rows", payload)   committed events (secbus.log.committed)
                             ("head", n)     events are committed up to offset n
                             ("stop", seconds)   correlate what is committed (to that
                                             deadline), store the cursor, exit
    correlator -> consumer   ("ready", health), ("health", health), ("traces", [(seq, body), ...]),
                             ("failed", message), ("stopped", health)

Failures: if the child dies, the stand-in logs it and starts another one with
backoff; it resumes from its cursor in the log and replays, as after a broker
restart (nothing is lost, no trace is stored twice).  If the consumer process
goes away the child's pipe closes and it exits: what it had not stored is
behind its cursor.  The child is a fresh interpreter (``python -m``, as the
audit writer), not a fork: the consumer process has threads.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from .. import gcpolicy
from ..log.base import STREAMS
from ..log.cache import CachedLog
from ..pipes import end_child, start_child
from .correlator import NAME, CorrelatorRunner
from .tail import TailFollower
from .wakeup import Wakeup

log = logging.getLogger("secbus.correlator")

#: How long the child may take to open the log (it replays what it must once running).
START_TIMEOUT_S = 60.0
#: Restart backoff after the child died: first wait, cap.
RESTART_BACKOFF_S = (0.5, 30.0)
#: How often the child reports its health (the floors for retention come from it).
HEALTH_EVERY_S = 0.2


class CorrelatorProcess:
    """In the consumer process: starts, feeds and watches the correlator process.

    Offers what the consumer process asks of a consumer: ``start``, ``stop``,
    ``block_cursors`` and ``health`` (the child's own report)."""

    kind = "correlator"

    def __init__(self, log_: CachedLog, wakeup: Wakeup, config: dict[str, Any]):
        self.log = log_
        self.wakeup = wakeup
        self.config = config
        stored = log_.get_cursor(NAME, "events")
        # until the child reports: what it will start from, a safe (lower) floor for retention
        self._health: dict[str, Any] = {"state": "starting", "block": stored if stored is not None else log_.first("events") - 1}
        self._lock = threading.Lock()  # one sender at a time on the pipe
        self._process: subprocess.Popen | None = None
        self._reader: Connection | None = None
        self._writer: Connection | None = None
        self._head = wakeup.committed("events")
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self.restarts = 0

    # --- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        self._spawn()
        threading.Thread(target=self._receive, name="correlator-receive", daemon=True).start()

    def offer(self, payload: tuple) -> None:
        """Committed events from ingest (as the tail follower gets them): passed on as they are."""
        self._pass_on(("rows", payload))

    def advance(self, head: int) -> None:
        """Events are committed up to ``head``."""
        self._head = max(self._head, head)
        self._pass_on(("head", head))

    def _pass_on(self, message: tuple) -> None:
        try:
            self._send(message)
        except (OSError, AttributeError):  # being restarted: the new child reads the log itself
            pass

    def stop(self, deadline: float) -> None:
        """Hand over the final head, let the child correlate it (to ``deadline``) and exit."""
        self._stopping.set()
        try:
            self._send(("head", self._head))
            self._send(("stop", max(0.0, deadline - time.monotonic())))
        except OSError:
            pass  # already gone: its cursor is in the log
        self._stopped.wait(max(0.0, deadline - time.monotonic()) + 2.0)
        self._end_child()

    def block_cursors(self) -> dict[str, int]:
        return {"events": self._health["block"]}

    def health(self) -> dict[str, Any]:
        out = {k: v for k, v in self._health.items() if k != "block"}
        out["process"] = {"pid": self._process.pid if self._process is not None else None, "restarts": self.restarts}
        return out

    @property
    def open_count(self) -> int:
        return int(self._health.get("open_traces") or 0)

    # --- the child -----------------------------------------------------------
    def _spawn(self) -> None:
        self._process, self._reader, self._writer = start_child(__name__)
        self._send(("open", self.config, logging.getLogger().level))
        if not self._reader.poll(START_TIMEOUT_S):
            raise RuntimeError(f"correlator process: not ready within {START_TIMEOUT_S:.0f} s")
        message = self._reader.recv()
        if message[0] != "ready":
            raise RuntimeError(f"correlator process: {message[1] if len(message) > 1 else message[0]}")
        self._health = message[1]
        self._send(("head", self._head))

    def _send(self, message: tuple) -> None:
        with self._lock:
            self._writer.send(message)

    def _receive(self) -> None:
        backoff = RESTART_BACKOFF_S[0]
        while True:
            try:
                message = self._reader.recv()
            except (EOFError, OSError):
                if self._stopping.is_set():
                    self._stopped.set()
                    return
                code = self._process.wait() if self._process is not None else None
                self._health = {**self._health, "state": "restarting"}
                log.error("correlator process ended (exit code %s); starting another in %.1f s", code, backoff)
                if self._stopping.wait(backoff):
                    self._stopped.set()
                    return
                backoff = min(backoff * 2, RESTART_BACKOFF_S[1])
                try:
                    self._end_child()
                    self._spawn()
                    self.restarts += 1
                except Exception as exc:  # noqa: BLE001 - keep trying, the log keeps everything
                    log.error("correlator process: restart failed: %s", exc)
                continue
            kind = message[0]
            if kind == "traces":
                stored = message[1]
                self.log.put_stored("traces", stored)
                self.wakeup.advance("traces", stored[-1][0])
            elif kind == "health":
                self._health = message[1]
                backoff = RESTART_BACKOFF_S[0]
            elif kind == "stopped":
                self._health = message[1]
                self._stopped.set()
                return

    def _end_child(self) -> None:
        end_child(self._process, self._reader, self._writer)


class _ForwardingLog:
    """The log as the correlator uses it: reads through ``cached`` (the tail follower fills
    it); each stored trace goes to the log and its full body to ``send``, not to the cache."""

    def __init__(self, cached: CachedLog, send):
        self.cached = cached
        self.send = send

    def append(self, stream: str, records, cursor=None, dedupe: bool = False):
        seqs, bodies = self.cached.inner.append_encoded(stream, records, cursor, dedupe)
        stored = [(seq, body) for seq, body in zip(seqs, bodies) if seq is not None]
        if stored:
            self.send(("traces", stored))
        return seqs

    def __getattr__(self, name: str):
        return getattr(self.cached, name)


def _report(runner: CorrelatorRunner) -> dict[str, Any]:
    return {**runner.health(), "open_traces": runner.correlator.open_count, "block": runner.block_cursors()["events"]}


def serve(reader: Connection, writer: Connection) -> None:
    """The child: open the log, run the correlator, follow the consumer process's messages."""
    from ..config import data_dir_of
    from ..log import open_log

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the consumer process decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        _, config, level = reader.recv()
    except (EOFError, OSError, ValueError, TypeError):
        return
    logging.basicConfig(level=level or logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s[correlator process]: %(message)s")
    lock = threading.Lock()

    def send(message: tuple) -> None:
        with lock:
            writer.send(message)

    try:
        os.umask(0o077)
        cached = CachedLog(open_log(data_dir_of(config).resolve(), durability=config["log"]["durability"], create=False))
        wakeup = Wakeup({s: cached.head(s) for s in STREAMS})
        follower = TailFollower(cached, wakeup)
        runner = CorrelatorRunner(_ForwardingLog(cached, send), wakeup, config["correlation"])
    except Exception as exc:
        log.exception("correlator process: start failed")
        send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    gcpolicy.tune()
    send(("ready", _report(runner)))
    follower.start()
    runner.start()
    done = threading.Event()

    def report() -> None:
        while not done.wait(HEALTH_EVERY_S):
            try:
                send(("health", _report(runner)))
            except OSError:
                return

    threading.Thread(target=report, name="health", daemon=True).start()
    while True:
        try:
            message = reader.recv()
        except (EOFError, OSError):  # the consumer process is gone: its cursor is in the log
            os._exit(0)
        kind = message[0]
        if kind == "rows":
            follower.offer(message[1])
        elif kind == "head":
            follower.advance(message[1])
        elif kind == "stop":
            end = time.monotonic() + message[1]
            follower.catch_up(end)
            runner.stop(end)
            done.set()
            send(("stopped", _report(runner)))
            follower.stop()
            cached.close()
            return


if __name__ == "__main__":
    serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
