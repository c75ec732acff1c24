"""Run the real broker as a subprocess and talk to it with a plain pyzmq client.

Every test that needs a broker uses :func:`start_broker` (or the ``broker``
fixture in ``tests/conftest.py``): ``secbus serve`` runs in its own process,
on free ports (it binds port 0 and reports what it got in
``<data_dir>/broker.json``), in a temp data dir, with its stdout and stderr in
``<dir>/broker.log``, which ``conftest.py`` prints when a test fails.
:meth:`BrokerProcess.restart` reuses the same ports and data, so connected
clients reconnect on their own.

:class:`BrokerProcess` is :class:`secbus.testing.Broker` (what handler authors
use) plus the session's bookkeeping and a PING to say ready.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Iterable

import zmq

from secbus.testing import Broker, next_dir, secbus_command, wait_until
from secbus_sdk import wire

__all__ = ["BrokerProcess", "RawClient", "next_dir", "run_secbus", "secbus_command", "start_broker", "stop_leftovers", "wait_until"]

#: every BrokerProcess created, so conftest can show their logs when a test fails
REGISTRY: list["BrokerProcess"] = []


# --------------------------------------------------------------------------
# raw protocol client


class RawClient:
    """A plain DEALER speaking protocol v1, for tests that need exact bytes.

    ``request`` sends one request and returns the decoded reply;
    ``send_frames`` sends arbitrary frames (bad input tests) and ``recv``
    reads one reply."""

    def __init__(self, endpoint: str, timeout: float = 10.0):
        self.endpoint = endpoint
        self.timeout = timeout
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def send_frames(self, frames: Iterable[bytes]) -> None:
        self.sock.send_multipart(list(frames))

    def send(self, command: bytes | str, body: dict) -> None:
        command = command.encode() if isinstance(command, str) else command
        self.sock.send_multipart(wire.encode_frames(command, body))

    def recv(self, timeout: float | None = None) -> tuple[bytes, dict]:
        timeout = self.timeout if timeout is None else timeout
        if not self.sock.poll(int(timeout * 1000)):
            raise TimeoutError(f"no reply from {self.endpoint} within {timeout}s")
        frames = self.sock.recv_multipart()
        return wire.decode_frames(frames, wire.Limits(max_batch_bytes=64 * 1024 * 1024))

    def request(self, command: bytes | str, body: dict, timeout: float | None = None) -> tuple[bytes, dict]:
        self.send(command, body)
        return self.recv(timeout)

    def publish(self, events: list[dict], seq: int = 1, timeout: float | None = None) -> dict:
        """PUB a batch and return the ACK body (raises AssertionError on another reply)."""
        command, body = self.request(wire.PUB, {"seq": seq, "events": events}, timeout)
        assert command == wire.ACK, f"expected ACK, got {command!r} {body}"
        return body

    def ping(self, timeout: float | None = None) -> dict:
        command, body = self.request(wire.PING, {}, timeout)
        assert command == wire.PONG, f"expected PONG, got {command!r} {body}"
        return body

    def close(self) -> None:
        self.sock.close(0)

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------
# the broker process


def run_secbus(*args: str, timeout: float = 30, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``secbus ARGS...`` as a user runs it: no ``SECBUS_*`` from the test's environment but ``env``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SECBUS_")}
    full_env.update(env or {})
    return subprocess.run(secbus_command() + list(args), capture_output=True, text=True, timeout=timeout, env=full_env)


#: Brokers started and not yet stopped or killed (stop_leftovers ends them after the session).
RUNNING: "set[BrokerProcess]" = set()


def stop_leftovers() -> None:
    """SIGKILL every broker a test left running (its consumer process exits with it)."""
    for broker in list(RUNNING):
        broker.kill()


class BrokerProcess(Broker):
    """:class:`secbus.testing.Broker`, known to the test session (its log in failure reports, killed
    at the end if a test left it running), ready once its ingest answers PING."""

    def __init__(self, base_dir: str | os.PathLike, config: dict | None = None, handlers: list[str] | None = None, env: dict | None = None):
        super().__init__(base_dir, config=config, handlers=handlers, env=env)
        REGISTRY.append(self)

    def start(self) -> "BrokerProcess":
        super().start()
        RUNNING.add(self)
        return self

    def stop(self, timeout: float = 30.0) -> int | None:
        try:
            return super().stop(timeout)
        finally:
            RUNNING.discard(self)

    def kill(self) -> None:
        super().kill()
        RUNNING.discard(self)

    def probe_client(self) -> "RawClient":
        """The client wait_ready pings with (a subclass with CURVE gives a keyed one)."""
        return RawClient(self.ingest)

    def wait_answering(self, deadline: float) -> None:
        with self.probe_client() as client:
            while True:
                try:
                    client.ping(timeout=0.5)
                    return
                except TimeoutError:
                    self._runtime()
                    if time.monotonic() > deadline:
                        raise

    def client(self, timeout: float = 10.0) -> RawClient:
        return RawClient(self.ingest, timeout)


def start_broker(tmp_path: str | os.PathLike, config: dict | None = None, handlers: list[str] | None = None, env: dict | None = None, timeout: float = 20.0) -> BrokerProcess:
    """Start a broker in ``tmp_path/broker-N`` and wait until it answers PING.

    ``config`` is merged over the test defaults (free ports, temp data dir);
    ``handlers`` sets ``[handlers] enabled`` (``[]`` for none)."""
    broker = BrokerProcess(next_dir(tmp_path), config=config, handlers=handlers, env=env)
    broker.start()
    try:
        broker.wait_ready(timeout)
    except BaseException:
        broker.kill()
        raise
    return broker
