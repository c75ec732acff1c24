"""Broker replies the real broker cannot be made to give on cue: ``ERR overloaded`` and
garbage frames.

The real broker answers ``overloaded`` only when a handler falls far behind or
a publisher exceeds its rate, which a test cannot time exactly, and it never
sends malformed replies; so here a scripted ROUTER peer plays those parts and
pins down the SDK's side of the conversation (PROTOCOL.md section 3).
Everything else is tested against the real broker.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import pytest
import zmq

from secbus_sdk import Client, wire

from .helpers import wait_until

Reply = Callable[[int, dict], list[bytes]]


class ScriptedPeer:
    """A ROUTER that answers PING with PONG and the n-th PUB (1-based) with ``reply(n, body)``."""

    def __init__(self, reply: Reply):
        self.reply = reply
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.endpoint = f"tcp://127.0.0.1:{self.router.bind_to_random_port('tcp://127.0.0.1')}"
        self.pubs: list[tuple[float, list[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self.router.poll(20):
                continue
            ident, *frames = self.router.recv_multipart()
            command, body = wire.decode_frames(frames)
            if command == wire.PING:
                self.router.send_multipart([ident, *wire.encode_frames(wire.PONG, {"time_ns": time.time_ns(), "version": 1})])
                continue
            self.pubs.append((time.monotonic(), [e["id"] for e in body["events"]]))
            self.router.send_multipart([ident, *self.reply(len(self.pubs), body)])

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.router.close()
        self.ctx.term()


def ack(body: dict) -> list[bytes]:
    n = len(body["events"])
    return wire.encode_frames(wire.ACK, {"accepted": n, "duplicate": 0, "rejected": [], "seq": body["seq"]})


@pytest.fixture
def peer_client(tmp_path):
    made = []

    def make(reply: Reply, **options):
        peer = ScriptedPeer(reply)
        client = Client(peer.endpoint, service="unit", spool_dir=str(tmp_path / "spool"), **options)
        made.append((peer, client))
        wait_until(lambda: client.stats()["connected"], 5, message="first PONG")
        return peer, client

    yield make
    for peer, client in made:
        client.close(0)
        peer.close()


def test_overloaded_batch_is_resent_after_retry_after_ms_and_not_before(peer_client):
    def reply(n, body):
        if n == 1:
            return wire.encode_frames(wire.ERR, {"code": "overloaded", "message": "backlog", "retry_after_ms": 300, "seq": body["seq"]})
        return ack(body)

    peer, client = peer_client(reply)
    ids = [client.emit("authn.login") for _ in range(5)]
    assert client.flush(10), client.stats()
    (t1, first), (t2, second) = peer.pubs[:2]
    assert first == ids and second == ids, "the same events are re-sent"
    assert t2 - t1 >= 0.3, "not before retry_after_ms"
    stats = client.stats()
    assert stats["acked"] == 5 and stats["rejected"] == 0 and stats["spooled"] == 0
    assert "overloaded" in stats["last_error"]


def test_garbage_replies_are_counted_and_the_events_still_get_through(peer_client):
    def reply(n, body):
        if n == 1:
            return [b"SECBUS1", b"ACK"]  # two frames: not a valid reply
        if n == 2:
            return [b"SECBUS1", b"ACK", b"\xc1"]  # not msgpack
        return ack(body)

    peer, client = peer_client(reply, ack_timeout=0.3)
    ids = [client.emit("authn.login") for _ in range(3)]
    assert client.flush(15), client.stats()
    stats = client.stats()
    assert stats["bad_replies"] == 2
    assert stats["acked"] == 3 and stats["dropped"] == 0
    assert all(pub[1] == ids for pub in peer.pubs), "each attempt re-sends the same events"


def test_err_for_a_batch_is_counted_as_rejected_and_not_resent(peer_client):
    def reply(n, body):
        return wire.encode_frames(wire.ERR, {"code": "unauthorized", "message": "type authn.login not allowed", "seq": body["seq"]})

    peer, client = peer_client(reply)
    client.emit("authn.login")
    client.emit("authn.login")
    assert client.flush(10)
    wait_until(lambda: client.stats()["rejected"] == 2, 5, message="both rejected")
    assert "unauthorized" in client.stats()["last_error"]
    assert sum(len(ids) for _, ids in peer.pubs) == 2, "never re-sent"
