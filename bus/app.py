"""The broker: wires config, log, ingest and the consumer process together and runs them.

Two processes (docs/operations.md, "Processes"): this one runs ingest, the
only writer of the events stream; a child runs the correlator, the live feed,
the handlers and HTTP (:mod:`secbus.consumers.process`), so no handler can
take the interpreter lock from the thread that commits and ACKs.

Lifecycle (``secbus serve``):

1. load the config; fork the consumer process (it waits for its orders);
   create the data dir (mode 0700) and lock it so two brokers never share a log;
2. open the log, bind ingest; the consumer process binds the feed, loads and
   ``startup``s the enabled handlers (which may add HTTP routes), serves HTTP;
3. start ingest and print where everything is;
4. on SIGINT/SIGTERM: stop intake (the group in progress is committed and
   ACKed), let the correlator and the handlers drain up to
   ``handlers.shutdown_deadline_s``, call ``shutdown()`` on each, close.
   A second signal exits at once: anything ACKed is already committed, so
   nothing ACKed is lost either way.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import zmq

from . import __version__, gcpolicy
from .auth.security import Security
from .config import data_dir_of, limits_of
from .consumers.supervisor import ConsumerSupervisor
from .ingest.router import Ingest
from .log import open_log
from .log.write_failures import WriteFailures

log = logging.getLogger("secbus")


class DataDirInUse(RuntimeError):
    pass


def prepare_data_dir(path: Path) -> Path:
    """Create the data dir with mode 0700 (events may hold personal data); every
    file the broker creates afterwards is 0600 (umask 077)."""
    os.umask(0o077)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        log.warning("data dir %s is readable by other users; consider chmod 700", path)
    return path


class Broker:
    """One broker: call :meth:`start`, then :meth:`stop` (or :func:`serve`)."""

    def __init__(self, config: dict[str, Any]):
        self.config = config
        self.data_dir = data_dir_of(config).resolve()
        self.limits = limits_of(config)
        # Security first: a bad key file or an insecure bind stops the broker before it binds anything.
        self.security = Security.from_config(config)
        self.security_notes = self.security.check_binds(config["ingest"]["endpoint"], config["feed"]["endpoint"], config["http"]["address"])
        self.stop_intake = threading.Event()
        self.started_ns = time.time_ns()
        self.addresses: dict[str, str] = {}
        self._lock_fh = None
        self._last_retention = 0
        self._retention_pending = False
        self.write_failures = WriteFailures()

    # --- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        self.consumers = ConsumerSupervisor(self.config, self.figures)
        self.consumers.fork()  # first: no threads, sockets or files yet (bus/consumers/supervisor.py)
        try:
            self._start()
        except BaseException:
            self.consumers.abort()
            raise

    def _start(self) -> None:
        prepare_data_dir(self.data_dir)
        self._lock()
        self.log = open_log(self.data_dir, durability=self.config["log"]["durability"], background_checkpoint=True)
        self.ctx = zmq.Context()
        self.security.start(self.ctx)  # the ZAP handler must run before any CURVE socket binds
        self.ingest = Ingest(
            self.ctx,
            self.config["ingest"]["endpoint"],
            self.log,
            self.limits,
            self.config["ingest"],
            backlog=self.backlog,
            on_commit=self.consumers.advance,
            maintenance=self._maintenance,
            security=self.security,
            write_failures=self.write_failures,
        )
        self.addresses["ingest"] = self.ingest.endpoint
        wanted = {"feed": self.config["feed"]["endpoint"], "http": self.config["http"]["address"]}
        self.addresses.update(self.consumers.start(wanted, self.log.head("events")))
        self.ingest_thread = threading.Thread(target=self.ingest.run, args=(self.stop_intake,), name="ingest", daemon=True)
        self.ingest_thread.start()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="checkpoint", daemon=True)
        self._checkpointer.start()
        self._write_runtime_file()

    def _checkpoint_loop(self) -> None:
        """Checkpoint the log about once a second, off the ingest path (bus/log/sqlite.py)."""
        while not self.stop_intake.wait(1.0):
            try:
                self.log.checkpoint()
            except Exception as exc:
                self.write_failures.failed("checkpoint", exc)
            else:
                self.write_failures.succeeded("checkpoint")

    def _lock(self) -> None:
        fh = open(self.data_dir / "broker.lock", "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            raise DataDirInUse(f"data dir {self.data_dir} is in use by another broker ({fh.read().strip() or 'pid unknown'})") from None
        fh.truncate(0)
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        self._lock_fh = fh

    def _write_runtime_file(self) -> None:
        """``broker.json``: the bound addresses, for tools and tests (removed at a clean stop)."""
        path = self.data_dir / "broker.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), **self.addresses, "data_dir": str(self.data_dir)}))
        os.replace(tmp, path)

    def stop(self, deadline_s: float | None = None) -> None:
        deadline_s = self.config["handlers"]["shutdown_deadline_s"] if deadline_s is None else deadline_s
        end = time.monotonic() + deadline_s
        self.stop_intake.set()
        self.ingest_thread.join()
        self._checkpointer.join()
        # the consumer process correlates what is committed, then lets handlers drain
        self.consumers.advance(self.log.head("events"))
        self.consumers.stop(end)
        self.log.close()
        self.security.stop()  # closes the ZAP socket, or ctx.term() would wait for it
        self.ctx.term()
        try:
            (self.data_dir / "broker.json").unlink()
        except FileNotFoundError:
            pass
        if self._lock_fh is not None:
            self._lock_fh.close()

    # --- shared state ------------------------------------------------------
    def backlog(self) -> int:
        """Events behind the slowest running ``block`` consumer (what retention must keep)."""
        head = self.log.head("events")
        return head - self.consumers.floors.get("events", head)

    def _maintenance(self) -> None:
        """Retention, called by the ingest thread between groups (the events
        stream's only writer), at most every ``retention_interval_s`` and for
        at most ~50 ms at a time, so it never stalls ingest for long."""
        cfg = self.config["log"]
        now = time.time_ns()
        if not self._retention_pending and now - self._last_retention < cfg["retention_interval_s"] * 1e9:
            return
        self._last_retention = now
        budget_end = time.monotonic() + 0.05
        try:
            while True:
                deleted = self.log.retain(int(cfg["retention_max_age_s"] * 1e9), cfg["retention_max_bytes"], dict(self.consumers.floors), now)
                self._retention_pending = bool(deleted)
                if not deleted or time.monotonic() > budget_end or self.stop_intake.is_set():
                    break
        except Exception as exc:
            self._retention_pending = False
            self.write_failures.failed("retention", exc)
        else:
            self.write_failures.succeeded("retention")

    def figures(self) -> dict[str, Any]:
        """The ingest process's part of /healthz (the consumer process adds its own)."""
        return {
            "status": "stopping" if self.stop_intake.is_set() else "ok",
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round((time.time_ns() - self.started_ns) / 1e9, 3),
            "listening": dict(self.addresses),
            "security": self.security.stats(),
            "ingest": {
                "requests": self.ingest.counts["requests"],
                "events_accepted": self.ingest.counts["events_accepted"],
                "events_duplicate": self.ingest.counts["events_duplicate"],
                "events_redacted": self.ingest.counts["events_redacted"],
                "replies_dropped": self.ingest.counts["replies_dropped"],
                "connections_accepted": self.ingest.counts["connections_accepted"],
                "connections_closed": self.ingest.counts["connections_closed"],
                "handshakes_failed": self.ingest.counts["handshakes_failed"],
                "backlog": self.backlog(),
                "max_backlog": self.config["ingest"]["max_backlog"],
            },
            "rejects": dict(self.ingest.rejects),
            "log": {"writes": self.write_failures.figures()},  # the consumer process adds the rest of "log"
        }


#: How long a thread may hold the interpreter lock while another waits for it,
#: in both processes (set before the fork).  A thread that gave the lock up for
#: I/O (a socket, SQLite, a file write) waits up to this long to get it back
#: while another thread is busy: measured when ingest and the consumers shared
#: one process, 0.5 ms instead of CPython's 5 ms gave a SQLite writer thread
#: 3x the rows/s against 3 busy threads.
SWITCH_INTERVAL_S = 0.0005


def serve(config: dict[str, Any], out=sys.stdout) -> int:
    """Run a broker until SIGINT/SIGTERM; a second signal exits at once."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    broker = Broker(config)
    requested = threading.Event()
    signals = []

    def on_signal(signum, frame):
        signals.append(signum)
        if len(signals) > 1:
            os.write(2, b"secbus: second signal, exiting now (everything ACKed is committed)\n")
            os._exit(1)
        requested.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"secbus {__version__}: data dir {broker.data_dir}", file=out, flush=True)
    for line in broker.security_notes:
        print(f"secbus: {line}", file=out, flush=True)
    broker.start()
    gcpolicy.tune()
    for name in ("ingest", "feed", "http"):
        if broker.addresses.get(name):
            print(f"secbus: {name} listening on {broker.addresses[name]}", file=out, flush=True)
    print(f"secbus: pid {os.getpid()} (ingest), {broker.consumers.pid} (consumers: feed, handlers, HTTP; the correlator and audit writer are its children)", file=out, flush=True)
    print("secbus: ready", file=out, flush=True)
    while not requested.wait(0.5):
        pass
    print(f"secbus: stopping (signal {signals[0]}); draining handlers for up to {config['handlers']['shutdown_deadline_s']}s", file=out, flush=True)
    broker.stop()
    print("secbus: stopped", file=out, flush=True)
    return 0
