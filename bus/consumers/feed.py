"""The live feed: an XPUB socket publishing the log as it grows.

Topics (PROTOCOL.md section 7): ``event.<type>`` with the stored event,
``trace`` with a closed trace, ``alert.<severity>`` with an alert.  The feed
is live, not durable: it starts at the head of each stream, skips ahead when
more than ``max_lag`` behind, and ZeroMQ drops messages for a subscriber past
its high-water mark.  While nobody is subscribed it does not even read the
log (XPUB tells the publisher about subscriptions).

One thread owns the socket (ZeroMQ sockets are not thread safe).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

import zmq

from secbus_sdk import wire

from ..auth.feed import feed_topic, tenant_of_alert
from ..ingest.router import bind_address
from ..log.base import EventLog
from .wakeup import Wakeup

log = logging.getLogger("secbus.feed")
STREAMS = ("events", "traces", "alerts")


def topic_of(stream: str, record: dict) -> bytes:
    if stream == "events":
        return b"event." + record["type"].encode()
    if stream == "traces":
        return b"trace"
    return b"alert." + str(record.get("severity", "info")).encode()


class Feed:
    kind = "feed"

    def __init__(self, ctx: zmq.Context, endpoint: str, log_: EventLog, wakeup: Wakeup, config: dict[str, Any], security=None):
        self.name = "feed"
        self.log = log_
        self.wakeup = wakeup
        self.max_lag = config.get("max_lag", 100_000)
        self.batch_size = config.get("batch_size", 1000)
        self.sock = ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.SNDHWM, config["sndhwm"])
        self.sock.setsockopt(zmq.LINGER, 0)
        # Subscribers send only subscriptions (a topic prefix); anything bigger drops that connection.
        self.sock.setsockopt(zmq.MAXMSGSIZE, 4096)
        # With CURVE (secbus.auth): tenant-prefixed topics and an XPUB_MANUAL gate that
        # applies only subscriptions inside the subscriber's tenant (bus/auth/feed.py).
        self.gate = None
        self.scoped = False
        if security is not None:
            security.secure_server_socket(self.sock)  # CURVE options must precede bind
            self.gate = security.feed_gate(self.sock)
            self.scoped = security.feed_scoped
        self.sock.bind(bind_address(endpoint))
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.cursors = {s: wakeup.head(s) for s in STREAMS}
        self.subscriptions: Counter = Counter()
        self.published = 0
        self.skipped = 0
        self.state = "starting"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feed", daemon=True)

    def start(self) -> None:
        self.state = "running"
        self._thread.start()

    def stop(self, deadline: float) -> None:
        self._stop.set()
        self.wakeup.poke()
        self._thread.join(max(0.0, deadline - time.monotonic()) + 1.0)

    def block_cursors(self) -> dict[str, int]:
        return {}

    def health(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "cursor": dict(self.cursors),
            "lag": {s: max(0, self.wakeup.committed(s) - c) for s, c in self.cursors.items()},
            "subscriptions": sum(1 for n in self.subscriptions.values() if n > 0),
            "published": self.published,
            "skipped": self.skipped,
        }

    def _subscriptions(self) -> None:
        if self.gate is not None:
            self.gate.handle()
            return
        while True:
            try:
                msg = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if msg[:1] == b"\x01":
                self.subscriptions[msg[1:]] += 1
            elif msg[:1] == b"\x00":
                self.subscriptions[msg[1:]] -= 1
                if self.subscriptions[msg[1:]] <= 0:
                    del self.subscriptions[msg[1:]]

    def _wanted(self, topic: bytes) -> bool:
        if self.gate is not None:
            return True  # XPUB_MANUAL: ZeroMQ filters by the subscriptions the gate applied
        return any(topic.startswith(prefix) for prefix in self.subscriptions)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._subscriptions()
                    progressed = False
                    for stream in STREAMS:
                        progressed |= self._step(stream)
                except Exception:  # log and carry on: the feed must not die with one bad record
                    log.exception("feed: publishing failed; skipping to the head")
                    self.cursors = {s: self.wakeup.head(s) for s in STREAMS}
                    progressed = False
                if not progressed:
                    self.wakeup.wait(dict(self.cursors), 0.05)
        finally:
            self.sock.close(0)
        self.state = "stopped"

    def _event_at(self, seq: int) -> dict | None:
        batch = self.log.read("events", seq - 1, 1)
        return batch[0] if batch and batch[0]["seq"] == seq else None

    def _step(self, stream: str) -> bool:
        head = self.wakeup.head(stream)
        cursor = self.cursors[stream]
        if cursor >= head:
            return False
        if not self.subscriptions and self.gate is None:
            self.cursors[stream] = head  # nobody listening: nothing to read
            return True
        if head - cursor > self.max_lag:
            self.skipped += head - self.max_lag - cursor
            cursor = head - self.max_lag
        batch = self.log.read(stream, cursor, self.batch_size)
        for record in batch:
            topic = topic_of(stream, record)
            if self.scoped:
                # alerts carry no tenant of their own: theirs is that of all their events, else admin-only
                tenant = tenant_of_alert(record, self._event_at) if stream == "alerts" else record.get("tenant")
                topic = feed_topic(topic, tenant, True)
            if self._wanted(topic):
                try:
                    self.sock.send_multipart([topic, wire.pack(record)], zmq.NOBLOCK)
                    self.published += 1
                except zmq.Again:
                    self.skipped += 1
        self.cursors[stream] = batch[-1]["seq"] if batch else head
        return True
