"""The ingest loop: drain the ROUTER, validate, one transaction, then the ACKs.

Group commit is what makes durable ingest fast: a commit costs about the
same for 1 event as for 1000, so the loop takes everything already waiting on
the socket (bounded by ``max_group_requests`` and ``max_group_events``, so a
flood cannot grow memory), commits it in one transaction and only then sends
the ACKs.  Under light load a group is one request and latency is one commit.

The loop is the only writer of the events stream, and the only thread that
touches the ROUTER socket (ZeroMQ sockets are not thread safe).  Retention of
old events runs here too, between groups, for the same single-writer reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Callable

import zmq
from zmq.utils.monitor import recv_monitor_message

from secbus_sdk.wire import MALFORMED, OVERLOADED, Limits

from ..log.base import EventLog, StampedEvent
from ..log.write_failures import WriteFailures
from .redact import SecretKeys
from .requests import PendingPub, RequestHandler, err

log = logging.getLogger("secbus.ingest")


def bind_address(endpoint: str) -> str:
    """``tcp://host:0`` means any free port (ZeroMQ spells it ``*``)."""
    return endpoint[:-2] + ":*" if endpoint.endswith(":0") else endpoint


class Ingest:
    """The ROUTER endpoint and its loop; run :meth:`run` in its own thread."""

    def __init__(
        self,
        ctx: zmq.Context,
        endpoint: str,
        log_: EventLog,
        limits: Limits,
        config: dict,
        backlog: Callable[[], int],
        on_commit: Callable[[int, list[StampedEvent], list], None],
        maintenance: Callable[[], None] | None = None,
        security=None,
        write_failures: WriteFailures | None = None,
    ):
        self.log = log_
        self.limits = limits
        self.max_backlog = config["max_backlog"]
        self.retry_after_ms = config["retry_after_ms"]
        self.max_group_requests = config["max_group_requests"]
        self.max_group_events = config["max_group_events"]
        self.backlog = backlog
        self.on_commit = on_commit
        self.maintenance = maintenance
        self.write_failures = write_failures or WriteFailures()
        self.rejects: Counter = Counter()
        self.counts: Counter = Counter()
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.MAXMSGSIZE, limits.max_frame_bytes)
        self.sock.setsockopt(zmq.LINGER, 2000)  # let the last ACKs leave at shutdown
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 0)  # a reply to a vanished peer is dropped, not an error
        self.sock.setsockopt(zmq.RCVHWM, 10_000)
        self.sock.setsockopt(zmq.SNDHWM, 100_000)
        if security is not None:
            security.secure_server_socket(self.sock)  # CURVE options must precede bind
        self.sock.bind(bind_address(endpoint))
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        # ZeroMQ drops a connection that sends a message over MAXMSGSIZE without
        # telling the application; the socket monitor's DISCONNECTED events are
        # the only trace of it, so they are counted (clean disconnects included).
        # Failed handshakes (CURVE on: a plain client, a wrong server key, a key ZAP denied) are counted too.
        self.monitor = self.sock.get_monitor_socket(
            zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH
        )
        self.handler = RequestHandler(limits, self.rejects, self._overloaded, security, SecretKeys(config["redact_keys"]), self.counts)
        self._last_ns = 0
        self._backlog_now = 0

    def _overloaded(self) -> int | None:
        if self._backlog_now > self.max_backlog:
            return self.retry_after_ms
        return None

    def _now_ns(self) -> int:
        # received_ns never goes backwards within the log, even if the wall clock does
        now = max(time.time_ns(), self._last_ns + 1)
        self._last_ns = now
        return now

    def run(self, stop: threading.Event) -> None:
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self.monitor, zmq.POLLIN)
        sock = self.sock
        try:
            while not stop.is_set():
                ready = dict(poller.poll(100))
                if self.monitor in ready:
                    self._monitor_events()
                if sock in ready:
                    try:
                        self._group(sock)
                    except Exception:  # never let the loop die: publishers would hang
                        log.exception("ingest: internal error in a group")
                if self.maintenance is not None:
                    self.maintenance()  # cheap unless retention is due
        finally:
            self.sock.disable_monitor()
            self.monitor.close(0)
            sock.close()

    def _recv(self, sock: zmq.Socket) -> tuple[list[zmq.Frame], int]:
        """One message and its frame count, keeping at most 5 frames (routing id
        + 4): a request with more is malformed anyway, and its extra frames are
        dropped as they are read rather than held (ZeroMQ limits each frame's
        size, not their number)."""
        frames = [sock.recv(zmq.NOBLOCK, copy=False)]
        total = 1
        more = frames[0].more
        while more:
            frame = sock.recv(copy=False)
            total += 1
            more = frame.more
            if len(frames) < 5:
                frames.append(frame)
        return frames, total

    def _monitor_events(self) -> None:
        while True:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_ACCEPTED:
                self.counts["connections_accepted"] += 1
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                self.counts["connections_closed"] += 1
            elif event["event"] in (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_AUTH):
                self.counts["handshakes_failed"] += 1

    def _group(self, sock: zmq.Socket) -> None:
        self._backlog_now = self.backlog()
        received_ns = self._now_ns()
        records: list[StampedEvent] = []
        replies: list = []
        requests = 0
        while requests < self.max_group_requests and len(records) < self.max_group_events:
            try:
                frames, total = self._recv(sock)
            except zmq.Again:
                break
            requests += 1
            if total > len(frames):
                self.rejects[MALFORMED] += 1
                replies.append(err(frames[0].bytes, MALFORMED, f"frames: expected 3 (SECBUS1, command, body), got {total - 1}"))
                continue
            mark = len(records)
            try:
                replies.append(self.handler.handle(frames, received_ns, records))
            except Exception as exc:  # a bug must cost one request, never the ingest loop
                del records[mark:]
                log.exception("ingest: internal error handling a request")
                self.rejects["internal"] += 1
                replies.append(err(frames[0].bytes, OVERLOADED, f"internal error ({type(exc).__name__}); retry later", None, self.retry_after_ms))
        self.counts["requests"] += requests
        seqs: list = []
        if records:
            try:
                seqs = self.log.append_events(records)
            except Exception as exc:  # disk full, I/O error: nothing is ACKed, publishers retry
                self.write_failures.failed("commit", exc)
                for i, reply in enumerate(replies):
                    if isinstance(reply, PendingPub):
                        self.rejects[OVERLOADED] += 1
                        replies[i] = err(reply.routing_id, OVERLOADED, f"log: commit failed ({exc}); retry", reply.seq, self.retry_after_ms)
                records = []
            else:
                self.write_failures.succeeded("commit")
        accepted = sum(1 for s in seqs if s is not None)
        self.counts["events_accepted"] += accepted
        self.counts["events_duplicate"] += len(seqs) - accepted
        for reply in replies:
            if isinstance(reply, PendingPub):
                reply = reply.ack(seqs)
            try:
                sock.send_multipart(reply, zmq.NOBLOCK)
            except zmq.Again:
                self.counts["replies_dropped"] += 1  # the peer is not reading; it will re-send
        if accepted:
            self.on_commit(self.log.head("events"), records, seqs)
