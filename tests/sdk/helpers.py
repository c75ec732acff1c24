"""Helpers shared by the SDK tests: a client on a dead endpoint, filling a client up."""

from __future__ import annotations

import socket

from secbus_sdk import Client

from support.broker import wait_until  # noqa: E402,F401  (re-exported for the SDK tests)


def free_port() -> int:
    """A port nothing listens on right now (the broker binds it later, or never)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead_endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def accounted(stats: dict) -> int:
    """Events the client can account for while no broker ever answered."""
    return stats["queued"] + stats["spooled"] + stats["held"] + stats["dropped"] + stats["fallback"] + stats["rejected"]


def fill_until_full(client: Client, limit: int = 100_000) -> int:
    """Emit until the queue is full (the bus is down and the spool full); return how many."""
    def full() -> bool:
        s = client.stats()
        return s["queued"] >= client._queue_size and bool(s["held"])

    def moved_or_held() -> bool:  # the sender made room (moved batches to the spool) or holds one
        s = client.stats()
        return s["queued"] < client._queue_size or bool(s["held"])

    for n in range(1, limit + 1):
        client.emit("authn.login", "success", attrs={"i": n, "pad": "p" * 200})
        if client.stats()["queued"] >= client._queue_size:
            wait_until(moved_or_held, timeout=10, interval=0.001, message=lambda: f"the sender to act on a full queue: {client.stats()}")
            if full():
                return n
    raise AssertionError(f"queue never filled: {client.stats()}")
