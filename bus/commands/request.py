"""A one-shot protocol request (emit, ping): DEALER, send, wait with a deadline.

Hand-written because the SDK's Client is a background publisher with a
spool; the CLI wants one request, one answer, and a clear error when no broker
answers.
"""

from __future__ import annotations

import zmq

from secbus_sdk import wire


class NoAnswer(TimeoutError):
    pass


def connect(sock: zmq.Socket, endpoint: str) -> None:
    """``sock.connect``; an endpoint ZeroMQ cannot use raises ValueError naming it (exit 2)."""
    try:
        sock.connect(endpoint)
    except zmq.ZMQError as exc:
        raise ValueError(f"--endpoint: cannot use {endpoint!r} ({zmq.strerror(exc.errno)}); "
                         f"expected tcp://HOST:PORT or ipc://PATH") from None


def request(endpoint: str, command: bytes, body: dict, timeout_s: float, curve=None) -> tuple[bytes, dict]:
    """Send one request and return the decoded reply; raise :class:`NoAnswer` on timeout.

    ``curve``: CURVE client keys from ``secbus.auth.client.client_curve`` (None: plain)."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        from ..auth.client import apply_client_curve

        apply_client_curve(sock, curve)
    try:
        connect(sock, endpoint)
        sock.send_multipart(wire.encode_frames(command, body))
        if not sock.poll(int(timeout_s * 1000)):
            raise NoAnswer(f"no answer from a broker at {endpoint} within {timeout_s:g}s (is `secbus serve` running?)")
        return wire.decode_frames(sock.recv_multipart())
    finally:
        sock.close()
