"""The consumer process: live feed, handler runners and HTTP beside ingest; it starts the correlator's.

Why a process of its own: the consumers used to share the broker's one
interpreter lock with ingest, so the correlator and every busy handler took
it from the thread that commits and ACKs, and publish-to-ACK latency grew
with handler work (benchmarks/FINDINGS.md 2).  Consumers only ever talked to
the log, so they run here and read the log that ingest writes:

* the ingest process (:mod:`secbus.consumers.supervisor`) starts this process, tells it
  every new events head after a commit, answers its requests for ingest
  figures (``/healthz``), and starts it again if it dies;
* this process puts each new range of events once into the shared tail
  cache (:mod:`secbus.log.cache`): as ingest handed them over, or read from
  the log when they did not come that way; it wakes the consumers, and
  reports the cursors that retention and ``max_backlog`` must respect;
* it passes the same committed events on to the correlator, which runs in a
  process of its own (:mod:`secbus.consumers.correlator_process`) and sends
  back the traces it stores.

Messages on the pipe (a ``multiprocessing`` Connection; both ends are this
program, so pickled tuples are fine)::

  ingest -> consumers   ("go", addresses)       bind these feed/HTTP addresses and start
                        ("rows", payload)       these events are committed (secbus.log.committed)
                        ("head", n)             events are committed up to offset n
                        ("stats", k, document)  the answer to request k
                        ("stop", seconds)       drain for up to that long, then exit
  consumers -> ingest   ("ready", addresses, floors)
                        ("failed", kind, message)   startup failed (kind "listen": a bind)
                        ("floors", {stream: offset})  the block cursors, when they move
                        ("stats?", k)           ingest figures wanted
                        ("stopped",)

If the pipe closes (the ingest process died, even by SIGKILL) this process
exits at once: what it had not processed is in the log behind its cursors and
is delivered again at the next start (at least once).  It ignores SIGINT and
SIGTERM (a terminal's Ctrl-C and systemd signal the whole group): the ingest
process decides when consumers stop, after its last commit.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

import zmq

from .. import gcpolicy
from ..auth.security import Security
from ..config import RUNNER_KEYS, data_dir_of, handler_settings
from ..log import open_log
from ..log.base import STREAMS
from ..log.cache import CachedLog
from .correlator_process import CorrelatorProcess
from .feed import Feed
from .plugin_app import PluginApp
from .plugins import plugin_manager
from .runner import HandlerRunner
from .tail import TailFollower
from .wakeup import Wakeup

log = logging.getLogger("secbus.consumers")

#: How often the block cursors are looked at (and sent when they moved).
FLOORS_INTERVAL_S = 0.05
#: How long /healthz waits for the ingest process's figures.
STATS_TIMEOUT_S = 2.0


class ConsumerProcess:
    """Everything after the log, in one process; see the module docstring."""

    def __init__(self, config: dict[str, Any], conn: Connection):
        self.config = config
        self.conn = conn
        self.data_dir = data_dir_of(config).resolve()
        self.security = Security.from_config(config)
        self.stopping = threading.Event()
        self.addresses: dict[str, str] = {}
        self._send_lock = threading.Lock()
        self._requests = itertools.count(1)
        self._answers: dict[int, Any] = {}
        self._answered = threading.Condition()

    # --- lifecycle ---------------------------------------------------------
    def start(self, addresses: dict[str, str]) -> None:
        """Open the log, bind the feed, load and ``startup`` the handlers, serve HTTP, start."""
        from ..http import HttpServer  # aiohttp is only needed here

        self.ctx = zmq.Context()
        self.log = CachedLog(open_log(self.data_dir, durability=self.config["log"]["durability"], create=False))
        self.wakeup = Wakeup({s: self.log.head(s) for s in STREAMS})
        self.follower = TailFollower(self.log, self.wakeup)
        self.security.start(self.ctx)  # the ZAP handler must run before the CURVE feed socket binds
        self.feed = Feed(self.ctx, addresses["feed"], self.log, self.wakeup, self.config["feed"], self.security)
        self.addresses["feed"] = self.feed.endpoint
        self.correlator = CorrelatorProcess(self.log, self.wakeup, self.config)
        self.http = HttpServer(addresses["http"], self.stats, self.security.http_middlewares())
        self._load_handlers()
        self.consumers = [self.correlator, *self.runners, self.feed]
        self.addresses["http"] = self.http.start()
        self.follower.start()
        for consumer in self.consumers:
            consumer.start()

    def _load_handlers(self) -> None:
        self.pm, plugins, self.skipped_handlers = plugin_manager(self.config["handlers"]["enabled"])
        self.runners: list[HandlerRunner] = []
        for name, plugin in plugins.items():
            options = handler_settings(self.config, name, plugin)
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

    def stop(self, deadline_s: float) -> None:
        """Correlate what is committed, let handlers drain to the deadline, close."""
        end = time.monotonic() + deadline_s
        self.stopping.set()
        self.follower.catch_up(end)
        self.correlator.stop(end)
        for runner in self.runners:
            runner.request_stop(end)
        for runner in self.runners:
            runner.join(end)
        self.feed.stop(end)
        self.follower.stop()
        self.http.stop()
        self.log.close()
        self.security.stop()  # closes the ZAP socket, or ctx.term() would wait for it
        self.ctx.term()

    # --- talking to the ingest process ------------------------------------
    def send(self, *message: Any) -> None:
        with self._send_lock:
            self.conn.send(message)

    def serve(self) -> None:
        """Follow the ingest process's messages until it says stop or goes away."""
        reporter = threading.Thread(target=self._report_floors, name="floors", daemon=True)
        reporter.start()
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                log.error("consumers: the ingest process is gone; exiting (unprocessed events stay in the log)")
                os._exit(3)
            kind = message[0]
            if kind == "rows":
                self.follower.offer(message[1])
                self.correlator.offer(message[1])
            elif kind == "head":
                self.follower.advance(message[1])
                self.correlator.advance(message[1])
            elif kind == "stats":
                with self._answered:
                    self._answers[message[1]] = message[2]
                    self._answered.notify_all()
            elif kind == "stop":
                self.stop(message[1])
                self.send("stopped")
                return

    def floors(self) -> dict[str, int]:
        """Per stream, the lowest cursor of a running ``block`` consumer."""
        floors: dict[str, int] = {}
        for consumer in self.consumers:
            for stream, offset in consumer.block_cursors().items():
                floors[stream] = min(floors.get(stream, offset), offset)
        return floors

    def _report_floors(self) -> None:
        sent: dict[str, int] | None = None
        while not self.stopping.wait(FLOORS_INTERVAL_S):
            floors = self.floors()
            if floors != sent:
                try:
                    self.send("floors", floors)
                except OSError:
                    return
                sent = floors

    def ingest_figures(self) -> dict[str, Any] | None:
        """Ask the ingest process for its part of /healthz (None if it does not answer)."""
        k = next(self._requests)
        self.send("stats?", k)
        end = time.monotonic() + STATS_TIMEOUT_S
        with self._answered:
            while k not in self._answers:
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self._answered.wait(left)
            return self._answers.pop(k)

    # --- /healthz ----------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """The /healthz document: the ingest process's figures plus the consumers'."""
        ingest = self.ingest_figures() or {"status": "ingest process not answering", "listening": {}, "security": {}}
        doc = dict(ingest)
        if self.stopping.is_set():
            doc["status"] = "stopping"
        doc["listening"] = {**ingest.get("listening", {}), **self.addresses}
        doc["security"] = merge_security(ingest.get("security", {}), self.security.stats())
        doc["log"] = {**self.log.stats(), **ingest.get("log", {})}
        doc["handlers"] = {
            **{r.name: r.health() for r in self.runners},
            **{name: {"state": "skipped", "reason": why} for name, why in self.skipped_handlers.items()},
        }
        doc["correlator"] = self.correlator.health()
        doc["feed"] = self.feed.health()
        doc["open_traces"] = self.correlator.open_count
        doc["consumers"] = {**ingest.get("consumers", {}), "pid": os.getpid(), "tail": self.follower.health()}
        return doc

    def publish_alert(self, alert: dict[str, Any]) -> int:
        seq = self.log.append("alerts", [alert])[0]
        self.wakeup.advance("alerts", seq)
        return seq


#: Security counters kept by both processes (the rest of the section is config, the same in both).
SUMMED_COUNTERS = ("http_denied", "handshakes_allowed", "handshakes_denied", "rate_limited", "unauthenticated_requests")


def merge_security(ingest: dict[str, Any], consumers: dict[str, Any]) -> dict[str, Any]:
    """One security section for /healthz from both processes' counts.

    Ingest counts rate limits, unauthenticated requests and handshakes on the
    ingest socket; this process counts handshakes on the feed, feed
    subscriptions and HTTP refusals."""
    out = {**consumers, **ingest}
    for key in SUMMED_COUNTERS:
        if key in ingest or key in consumers:
            out[key] = ingest.get(key, 0) + consumers.get(key, 0)
    out["last_denied"] = consumers.get("last_denied") or ingest.get("last_denied")
    if out["last_denied"] is None and "last_denied" not in ingest and "last_denied" not in consumers:
        del out["last_denied"]
    for key in ("feed_subscriptions", "feed_denied"):
        if key in consumers:
            out[key] = consumers[key]
    return out


def main(config: dict[str, Any], conn: Connection, inherited: Connection | None = None, switch_interval: float | None = None) -> None:
    """The process's entry point (started by :class:`~secbus.consumers.supervisor.ConsumerSupervisor`).

    ``inherited`` is the ingest process's end of the pipe when this process
    was forked: it is closed first, or the pipe would never look closed here."""
    if inherited is not None:
        inherited.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)
    os.umask(0o077)  # handlers' files (audit trail, alert logs) are private, as the log is
    os.nice(config["handlers"]["niceness"])  # ingest first: ACK latency is what applications see
    try:
        message = conn.recv()
    except (EOFError, OSError):
        return  # the ingest process gave up before starting us
    if message[0] != "go":
        return
    process = ConsumerProcess(config, conn)
    try:
        process.start(message[1])
    except zmq.ZMQError as exc:
        conn.send(("failed", "listen", f"feed {message[1]['feed']}: {exc}"))
        return
    except OSError as exc:
        conn.send(("failed", "listen", f"http {message[1]['http']}: {exc}"))
        return
    except Exception as exc:
        log.exception("consumers: startup failed")
        conn.send(("failed", "error", f"{type(exc).__name__}: {exc}"))
        return
    process.send("ready", process.addresses, process.floors())
    gcpolicy.tune()
    process.serve()
