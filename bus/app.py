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
from secbus_sdk.event import SEVERITIES, new_event_id

from .config import RUNNER_KEYS, data_dir_of, handler_settings, limits_of
from .consumers.correlator import CorrelatorRunner
from .consumers.feed import Feed
from .consumers.plugins import plugin_manager
from .consumers.runner import HandlerRunner
from .consumers.wakeup import Wakeup
from .http import HttpServer
from .ingest import Ingest
from .log import open_log
from .log.cache import CachedLog

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
        self.ctx = zmq.Context()
        self.stop_intake = threading.Event()
        self.started_ns = time.time_ns()
        self.threads: list[threading.Thread] = []
        self.consumers: list = []
        self.addresses: dict[str, str] = {}
        self._lock_fh = None
        self._last_retention = 0
        self._retention_pending = False

    # --- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        prepare_data_dir(self.data_dir)
        self._lock()
        self.log = CachedLog(open_log(self.data_dir, durability=self.config["log"]["durability"], background_checkpoint=True))
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
            idle=self.wakeup.ingest_idle,
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
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="checkpoint", daemon=True)
        self._checkpointer.start()
        self._write_runtime_file()

    def _start_consumers(self) -> None:
        """Bind the feed, load the enabled handlers and call their ``startup``."""
        self.feed = Feed(self.ctx, self.config["feed"]["endpoint"], self.log, self.wakeup, self.config["feed"], self.security)
        self.addresses["feed"] = self.feed.endpoint
        self.correlator = CorrelatorRunner(self.log, self.wakeup, self.config["correlation"])
        self.pm, plugins, self.skipped_handlers = plugin_manager(self.config["handlers"]["enabled"])
        self.runners: list[HandlerRunner] = []
        for name, plugin in plugins.items():
            options = handler_settings(self.config, name)
            settings = {k: v for k, v in options.items() if k not in RUNNER_KEYS}
            runner = HandlerRunner(name, plugin, self.pm, self.log, self.wakeup, options)
            try:
                self.pm.subset_hook_caller("startup", remove_plugins=[p for p in self.pm.get_plugins() if p is not plugin])(
                    app=PluginApp(self, name, settings)
                )
            except Exception as exc:
                runner.state = "failed"
                runner.last_error = f"startup: {type(exc).__name__}: {exc}"[:500]
                log.error("handler %s: startup failed, the handler stays stopped: %s", name, runner.last_error)
            self.runners.append(runner)
        self.consumers = [self.correlator, *self.runners, self.feed]

    def _checkpoint_loop(self) -> None:
        """Checkpoint the log about once a second, off the ingest path (bus/log/sqlite.py)."""
        while not self.stop_intake.wait(1.0):
            try:
                self.log.checkpoint()
            except Exception as exc:
                log.error("log checkpoint failed: %s", exc)

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
        # correlate what is committed, then let handlers drain events, traces and alerts together
        self.correlator.stop(end)
        for runner in self.runners:
            runner.request_stop(end)
        for runner in self.runners:
            runner.join(end)
        self.feed.stop(end)
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
                deleted = self.log.retain(int(cfg["retention_max_age_s"] * 1e9), cfg["retention_max_bytes"], self.retention_floor(), now)
                self._retention_pending = bool(deleted)
                if not deleted or time.monotonic() > budget_end or self.stop_intake.is_set():
                    break
        except Exception as exc:
            self._retention_pending = False
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
                "events_redacted": self.ingest.counts["events_redacted"],
                "replies_dropped": self.ingest.counts["replies_dropped"],
                "connections_accepted": self.ingest.counts["connections_accepted"],
                "connections_closed": self.ingest.counts["connections_closed"],
                "handshakes_failed": self.ingest.counts["handshakes_failed"],
                "backlog": self.backlog(),
                "max_backlog": self.config["ingest"]["max_backlog"],
            },
            "rejects": dict(self.ingest.rejects),
            "handlers": {
                **{r.name: r.health() for r in self.runners},
                **{name: {"state": "skipped", "reason": why} for name, why in self.skipped_handlers.items()},
            },
            "correlator": self.correlator.health(),
            "feed": self.feed.health(),
            "open_traces": self.correlator.correlator.open_count,
        }

    def publish_alert(self, alert: dict[str, Any]) -> int:
        if not isinstance(alert, dict):
            raise TypeError(f"publish_alert: expected a dict, got {type(alert).__name__}")
        severity = alert.get("severity")
        if severity not in SEVERITIES:
            raise ValueError(f"publish_alert: severity: expected one of {', '.join(SEVERITIES)}, got {severity!r}")
        record = dict(alert)
        record.pop("seq", None)
        record.setdefault("id", new_event_id())
        (seq,) = self.log.append("alerts", [record])
        self.wakeup.advance("alerts", seq)
        return seq


class LogView:
    """Read-only queries on the log for plugins (``app.log``)."""

    def __init__(self, broker: Broker):
        self._broker = broker

    def trace(self, tenant: str | None, trace_id: str) -> list[dict]:
        """Every retained event of a trace, in time order, closed or still open."""
        return self._broker.log.trace(tenant, trace_id, open_after=self._broker.correlator.cursor)

    def query(self, tenant: str | None = None, type_prefix: str | None = None, since_ns: int | None = None, until_ns: int | None = None, limit: int = 1000) -> list[dict]:
        """Events in log order matching every filter given (``since_ns <= ts < until_ns``)."""
        return self._broker.log.query(tenant, type_prefix, since_ns, until_ns, limit)

    def head(self, stream: str = "events") -> int:
        return self._broker.log.head(stream)


class PluginApp:
    """What a handler's ``startup(app)`` receives (documented in ``secbus.hookspecs``)."""

    def __init__(self, broker: Broker, name: str, settings: dict[str, Any]):
        self._broker = broker
        #: the handler's name (its entry-point name)
        self.name = name
        #: its ``[handlers.<name>]`` table, minus the runner keys (lag_policy, max_lag, batch_size)
        self.settings = settings
        #: the broker's data dir; keep a handler's files under ``data_dir / name``
        self.data_dir = broker.data_dir
        #: read-only queries: ``trace(tenant, trace_id)``, ``query(...)``
        self.log = LogView(broker)
        #: a logger named ``secbus.handler.<name>``
        self.logger = logging.getLogger(f"secbus.handler.{name}")

    def publish_alert(self, alert: dict[str, Any]) -> int:
        """Append an alert durably to the alerts stream; return its offset.

        It reaches every handler's ``on_alert`` and the live feed as
        ``alert.<severity>``. ``severity`` is required (info .. critical);
        ``id`` is added when missing."""
        return self._broker.publish_alert(alert)

    def add_route(self, method: str, path: str, handler) -> None:
        """Serve an aiohttp handler on the broker's HTTP port (call it during startup)."""
        self._broker.http.add_route(method, path, handler)

    def stats(self) -> dict[str, Any]:
        """The /healthz document."""
        return self._broker.stats()


#: How long a thread may hold the interpreter lock while another waits for it.
#: Every handoff to ingest waits up to this long while consumers are busy, and
#: ingest needs several per group: measured (a SQLite writer thread against 3
#: busy threads), 0.5 ms instead of CPython's 5 ms gave the writer 3x the rows/s.
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
