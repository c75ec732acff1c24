"""The broker process: wires config, log, ingest, consumers and HTTP together and runs them.

Lifecycle (``secbus serve``):

1. load the config, create the data dir (mode 0700) and lock it so two brokers
   never share one log;
2. open the log, bind ingest and the feed, load and ``startup`` the enabled
   handlers (which may add HTTP routes), start HTTP;
3. start the consumer threads, then ingest, and print where everything is;
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

from . import __version__
from .auth.security import Security
from .config import data_dir_of, limits_of
from .consumers.wakeup import Wakeup
from .http import HttpServer
from .ingest import Ingest
from .log import open_log

log = logging.getLogger("secbus")


class DataDirInUse(RuntimeError):
    pass


def prepare_data_dir(path: Path) -> Path:
    """Create the data dir with mode 0700 (events may hold personal data)."""
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
        self.ctx = zmq.Context()
        self.stop_intake = threading.Event()
        self.started_ns = time.time_ns()
        self.threads: list[threading.Thread] = []
        self.consumers: list = []
        self.addresses: dict[str, str] = {}
        self._lock_fh = None

    # --- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        prepare_data_dir(self.data_dir)
        self._lock()
        self.log = open_log(self.data_dir, durability=self.config["log"]["durability"])
        heads = {s: self.log.head(s) for s in ("events", "traces", "alerts")}
        self.wakeup = Wakeup(heads)
        self.security.start(self.ctx)  # the ZAP handler must run before any CURVE socket binds
        self.ingest = Ingest(
            self.ctx,
            self.config["ingest"]["endpoint"],
            self.log,
            self.limits,
            self.config["ingest"],
            backlog=self.backlog,
            on_commit=lambda head: self.wakeup.advance("events", head),
            maintenance=self._maintenance,
            security=self.security,
        )
        self.addresses["ingest"] = self.ingest.endpoint
        self.http = HttpServer(self.config["http"]["address"], self.stats, self.security.http_middlewares())
        self._start_consumers()
        self.addresses["http"] = self.http.start()
        for consumer in self.consumers:
            consumer.start()
        ingest_thread = threading.Thread(target=self.ingest.run, args=(self.stop_intake,), name="ingest", daemon=True)
        ingest_thread.start()
        self.ingest_thread = ingest_thread
        self._write_runtime_file()

    def _start_consumers(self) -> None:
        """Load handlers, the correlator and the feed (bus/consumers)."""
        self.addresses.setdefault("feed", "")

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
        for consumer in self.consumers:
            consumer.stop(end)
        self.http.stop()
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
        floor = self.retention_floor().get("events", head)
        return head - floor

    def retention_floor(self) -> dict[str, int]:
        floors: dict[str, int] = {}
        for consumer in self.consumers:
            for stream, offset in consumer.block_cursors().items():
                floors[stream] = min(floors.get(stream, offset), offset)
        return floors

    def _maintenance(self) -> None:
        cfg = self.config["log"]
        now = time.time_ns()
        if now - getattr(self, "_last_retention", 0) < cfg["retention_interval_s"] * 1e9:
            return
        self._last_retention = now
        try:
            while self.log.retain(int(cfg["retention_max_age_s"] * 1e9), cfg["retention_max_bytes"], self.retention_floor(), now) and not self.stop_intake.is_set():
                pass
        except Exception as exc:
            log.error("retention failed: %s", exc)

    def stats(self) -> dict[str, Any]:
        """The /healthz document (also ``app.stats()`` for plugins)."""
        return {
            "status": "stopping" if self.stop_intake.is_set() else "ok",
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round((time.time_ns() - self.started_ns) / 1e9, 3),
            "listening": dict(self.addresses),
            "security": self.security.stats(),
            "log": self.log.stats(),
            "ingest": {
                "requests": self.ingest.counts["requests"],
                "events_accepted": self.ingest.counts["events_accepted"],
                "events_duplicate": self.ingest.counts["events_duplicate"],
                "replies_dropped": self.ingest.counts["replies_dropped"],
                "connections_accepted": self.ingest.counts["connections_accepted"],
                "connections_closed": self.ingest.counts["connections_closed"],
                "backlog": self.backlog(),
                "max_backlog": self.config["ingest"]["max_backlog"],
            },
            "rejects": dict(self.ingest.rejects),
            "handlers": {c.name: c.health() for c in self.consumers if getattr(c, "kind", "") == "handler"},
            "consumers": {c.name: c.health() for c in self.consumers if getattr(c, "kind", "") != "handler"},
            "open_traces": sum(c.health().get("open_traces", 0) for c in self.consumers if getattr(c, "kind", "") == "correlator"),
        }


def serve(config: dict[str, Any], out=sys.stdout) -> int:
    """Run a broker until SIGINT/SIGTERM; a second signal exits at once."""
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
    for name in ("ingest", "feed", "http"):
        if broker.addresses.get(name):
            print(f"secbus: {name} listening on {broker.addresses[name]}", file=out, flush=True)
    print("secbus: ready", file=out, flush=True)
    while not requested.wait(0.5):
        pass
    print(f"secbus: stopping (signal {signals[0]}); draining handlers for up to {config['handlers']['shutdown_deadline_s']}s", file=out, flush=True)
    broker.stop()
    print("secbus: stopped", file=out, flush=True)
    return 0
