"""Start, feed and watch the consumer process from the ingest process.

The broker is two processes (docs/operations.md, "Processes"): this side
runs ingest, the only writer of the events stream; the consumer process
(:mod:`secbus.consumers.process`) runs the correlator, the live feed, the
handlers and HTTP.  This module is the ingest side of the pipe between them:

* :meth:`ConsumerSupervisor.fork` is the first thing the broker does, while
  it has no threads, sockets or database connections, so the child starts as
  a cheap ``fork`` (a fresh interpreter would add a few hundred milliseconds
  to every broker start);
* :meth:`ConsumerSupervisor.advance` is called by ingest after each commit
  and never blocks it: a sender thread passes on the committed events
  (:mod:`secbus.log.committed`, up to ``MAX_PENDING_BYTES`` waiting; past
  that, and while the consumer process restarts, only the newest head, and the
  consumer process reads those events from the log);
* the block cursors the consumer process reports are what retention and
  ``max_backlog`` respect (:attr:`ConsumerSupervisor.floors`); a stale report
  is only ever lower, so retention keeps more, never less;
* if the consumer process dies (a handler crashed the interpreter, the OOM
  killer), it is started again, on the same feed and HTTP addresses, with
  backoff; ingest goes on meanwhile and nothing is lost: consumers resume
  from their cursors in the log.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
import threading
import time
from typing import Any, Callable

from ..log import committed
from . import process

log = logging.getLogger("secbus.consumers")

#: How long the consumer process may take to bind and run every handler's ``startup``.
START_TIMEOUT_S = 120.0
#: Restart backoff after the consumer process died: first wait, cap.
RESTART_BACKOFF_S = (0.5, 30.0)
#: Stored bytes of committed events waiting for the sender thread; beyond this only heads are
#: sent.  About 5,000 typical events; counted in bytes so that large events cannot make it
#: hundreds of MB (a larger bound cost ~17 MB of RSS with a 1M backlog: FINDINGS.md 6).
MAX_PENDING_BYTES = 2 * 1024 * 1024


class ConsumerStartError(RuntimeError):
    """The consumer process could not start; ``kind`` is "listen" for a bind failure."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class ConsumerSupervisor:
    def __init__(self, config: dict[str, Any], figures: Callable[[], dict[str, Any]]):
        self.config = config
        #: the ingest process's part of /healthz
        self.figures = figures
        #: per stream, the lowest cursor of a running block consumer (reported by the child)
        self.floors: dict[str, int] = {}
        self.addresses: dict[str, str] = {}
        self.restarts = 0
        self.last_exit: str | None = None
        self._conn = None
        self._process = None
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._head = 0
        self._pending: list[tuple] = []  # (records, seqs) of commits not yet sent
        self._pending_bytes = 0
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def pid(self) -> int | None:
        """The consumer process's pid (it changes when the process is started again)."""
        return self._process.pid if self._process is not None else None

    # --- start -------------------------------------------------------------
    def fork(self) -> None:
        """Start the consumer process; it waits for :meth:`start` before doing anything."""
        if threading.active_count() == 1:
            self._launch(multiprocessing.get_context("fork"))
        else:  # forking a threaded process is unsafe; pay for a fresh interpreter
            self._launch(multiprocessing.get_context("spawn"))

    def _launch(self, mp) -> None:
        mine, theirs = mp.Pipe()
        # with fork the child inherits our end too and would never see it close: it closes its copy
        inherited = mine if mp.get_start_method() == "fork" else None
        # a spawned interpreter does not inherit the switch interval a forked one does
        child = mp.Process(target=process.main, args=(self.config, theirs, inherited, sys.getswitchinterval()), name="secbus-consumers")
        child.start()
        theirs.close()
        with self._send_lock:
            self._conn, self._process = mine, child

    def start(self, addresses: dict[str, str], head: int) -> dict[str, str]:
        """Tell the consumer process where to bind, wait until it is ready; return its addresses."""
        self._head = head
        self._go(addresses, START_TIMEOUT_S)
        for target, name in ((self._receive, "consumers-rx"), (self._transmit, "consumers-tx")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return dict(self.addresses)

    def _go(self, addresses: dict[str, str], timeout: float) -> None:
        """Send "go", then handle messages until "ready" or "failed" (HTTP is up before
        "ready", so a /healthz request may come first and is answered meanwhile)."""
        conn = self._conn
        end = time.monotonic() + timeout
        try:
            conn.send(("go", addresses))
            while True:
                if not conn.poll(max(0.0, end - time.monotonic())):
                    raise ConsumerStartError("error", f"the consumer process did not start within {timeout:.0f}s")
                message = conn.recv()
                if message[0] in ("ready", "failed"):
                    break
                self._handle(message)
        except (EOFError, OSError):
            self._process.join(5.0)
            raise ConsumerStartError("error", f"the consumer process exited during startup (exit code {self._process.exitcode})") from None
        if message[0] == "failed":
            self._process.join(5.0)
            raise ConsumerStartError(message[1], message[2])
        _, self.addresses, self.floors = message
        self._send(("head", self._head))

    def abort(self) -> None:
        """The broker failed to start: end the consumer process (it exits when the pipe closes)."""
        self._stopping.set()
        if self._conn is not None:
            self._conn.close()
        if self._process is not None:
            self._process.join(5.0)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()

    # --- running -----------------------------------------------------------
    def advance(self, head: int, records: list | None = None, seqs: list | None = None) -> None:
        """Events are committed up to ``head`` (called by ingest; never blocks on the pipe).

        ``records`` and ``seqs``: the commit's ``append_events`` arguments and result,
        whose stored events go over the pipe with the head."""
        with self._cond:
            if records is not None and self._pending_bytes < MAX_PENDING_BYTES:
                self._pending.append((records, seqs))
                self._pending_bytes += sum(len(record.body) for record in records)
            if head > self._head:
                self._head = head
            self._cond.notify()

    def _send(self, message: tuple) -> None:
        with self._send_lock:
            self._conn.send(message)

    def _transmit(self) -> None:
        sent = 0
        while True:
            with self._cond:
                while self._head <= sent and not self._pending and not self._stopping.is_set():
                    self._cond.wait()
                if self._stopping.is_set():
                    return
                head, commits = self._head, self._pending
                self._pending, self._pending_bytes = [], 0
            try:
                for records, seqs in commits:
                    payload = committed.pack(records, seqs)
                    if payload is not None:
                        self._send(("rows", payload))
                        sent = max(sent, committed.last_seq(payload))
                if head > sent:
                    self._send(("head", head))
                    sent = head
            except OSError:
                self._stopped.wait(0.1)  # the child is being restarted; it reads the log itself

    def _receive(self) -> None:
        try:
            self._dispatch()
        finally:
            self._stopped.set()  # nothing more will come: stop() need not wait

    def _dispatch(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                if self._stopping.is_set() or not self._restart():
                    return
                continue
            if message[0] == "stopped":
                return
            try:
                self._handle(message)
            except Exception:  # the link must outlive any one message
                log.exception("consumer process link: handling %r failed", message[0])

    def _handle(self, message: tuple) -> None:
        kind = message[0]
        if kind == "floors":
            self.floors = message[1]
        elif kind == "stats?":
            figures = self.figures()
            figures["consumers"] = {"restarts": self.restarts, "last_exit": self.last_exit}
            try:
                self._send(("stats", message[1], figures))
            except OSError:
                pass
        else:
            log.error("consumer process: unexpected message %r; ignored", kind)

    def _restart(self) -> bool:
        """Start the consumer process again after it died; False if stopping meanwhile."""
        self._conn.close()
        self._process.join(5.0)
        self.last_exit = f"exit code {self._process.exitcode} at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
        wait, cap = RESTART_BACKOFF_S
        log.error("the consumer process died (%s); starting it again in %.1fs (ingest goes on)", self.last_exit, wait)
        while not self._stopping.wait(wait):
            self._launch(multiprocessing.get_context("spawn"))
            try:
                self._go(self.addresses, START_TIMEOUT_S)
            except ConsumerStartError as exc:
                self._conn.close()
                if self._process.is_alive():  # hung in startup
                    self._process.kill()
                    self._process.join()
                wait = min(cap, wait * 2)
                log.error("the consumer process failed to start again (%s); next try in %.1fs", exc, wait)
                continue
            self.restarts += 1
            log.warning("the consumer process is running again (restart %d)", self.restarts)
            return True
        return False

    # --- stop --------------------------------------------------------------
    def stop(self, deadline: float) -> None:
        """Ingest has stopped: hand over the last head, let consumers drain to ``deadline`` (monotonic)."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        try:
            self._send(("head", self._head))
            self._send(("stop", max(0.0, deadline - time.monotonic())))
        except OSError:
            pass
        self._stopped.wait(max(0.0, deadline - time.monotonic()) + 10.0)
        self._process.join(5.0)
        if self._process.is_alive():
            log.error("the consumer process did not stop in time; killing it")
            self._process.kill()
            self._process.join()
        self._conn.close()
