"""``ERR overloaded``: the SDK waits ``retry_after_ms`` and re-sends the same events.

The real broker answers ``overloaded`` only when a handler falls far behind or
a publisher exceeds its rate, which a test cannot time exactly; so here a
scripted ROUTER peer answers the first PUB with ``overloaded`` and ACKs the
re-send, which pins down the SDK's side of the conversation (PROTOCOL.md
section 3).  Everything else is tested against the real broker.
"""

from __future__ import annotations

import threading
import time

import zmq

from secbus_sdk import Client, wire

from .helpers import wait_until


def test_overloaded_batch_is_resent_after_retry_after_ms_and_not_before(tmp_path):
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    log: list[tuple[float, str, list]] = []
    stop = threading.Event()

    def serve():
        pubs = 0
        while not stop.is_set():
            if not router.poll(20):
                continue
            ident, *frames = router.recv_multipart()
            command, body = wire.decode_frames(frames)
            now = time.monotonic()
            if command == wire.PING:
                router.send_multipart([ident, *wire.encode_frames(wire.PONG, {"time_ns": time.time_ns(), "version": 1})])
                continue
            pubs += 1
            ids = [e["id"] for e in body["events"]]
            log.append((now, "PUB", ids))
            if pubs == 1:
                reply = (wire.ERR, {"code": "overloaded", "message": "backlog", "retry_after_ms": 300, "seq": body["seq"]})
            else:
                reply = (wire.ACK, {"accepted": len(ids), "duplicate": 0, "rejected": [], "seq": body["seq"]})
            router.send_multipart([ident, *wire.encode_frames(*reply)])

    server = threading.Thread(target=serve)
    server.start()
    client = Client(f"tcp://127.0.0.1:{port}", service="unit", spool_dir=str(tmp_path / "spool"))
    try:
        wait_until(lambda: client.stats()["connected"], 5, message="first PONG")
        ids = [client.emit("authn.login") for _ in range(5)]
        assert client.flush(10), client.stats()
        first, second = log[0], log[1]
        assert first[2] == ids and second[2] == ids, "the same events are re-sent"
        assert second[0] - first[0] >= 0.3, "not before retry_after_ms"
        stats = client.stats()
        assert stats["acked"] == 5 and stats["rejected"] == 0 and stats["spooled"] == 0
        assert "overloaded" in stats["last_error"]
    finally:
        client.close(0)
        stop.set()
        server.join()
        router.close()
        ctx.term()
