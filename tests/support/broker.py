"""Run the real broker as a subprocess and talk to it with a plain pyzmq client.

Every test that needs a broker uses :func:`start_broker` (or the ``broker``
fixture in ``tests/conftest.py``): ``secbus serve`` runs in its own process,
on free ports (it binds port 0 and reports what it got in
``<data_dir>/broker.json``), in a temp data dir, with its stdout and stderr in
``<dir>/broker.log``, which ``conftest.py`` prints when a test fails.
:meth:`BrokerProcess.restart` reuses the same ports and data, so connected
clients reconnect on their own.

The config is written as TOML by a tiny writer below: the stdlib reads TOML
(``tomllib``) but cannot write it, and test configs are plain tables.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import zmq

from secbus_sdk import wire

T = TypeVar("T")

#: every BrokerProcess created, so conftest can show their logs when a test fails
REGISTRY: list["BrokerProcess"] = []


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, message: str | Callable[[], str] = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Raises AssertionError naming ``message`` (a string or a callable giving
    one, evaluated at failure time) when ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout}s waiting for: {text} (last value: {value!r})")
        time.sleep(interval)  # the polling interval of this deadline-bounded wait


# --------------------------------------------------------------------------
# TOML writing (tables, scalars, lists of scalars)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(data: dict, prefix: str = "") -> str:
    lines = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for key, value in data.items():
        if isinstance(value, dict):
            name = f"{prefix}{json.dumps(key)}"
            lines.append(f"\n[{name}]")
            lines.append(to_toml(value, name + "."))
    return "\n".join(lines)


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


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


def secbus_command() -> list[str]:
    script = Path(sys.executable).parent / "secbus"
    return [str(script)] if script.exists() else [sys.executable, "-m", "secbus.cli"]


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


class BrokerProcess:
    """``secbus serve`` in a subprocess; see the module docstring."""

    def __init__(self, base_dir: str | os.PathLike, config: dict | None = None, handlers: list[str] | None = None, env: dict | None = None):
        self.dir = Path(base_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.dir / "data"
        self.config_path = self.dir / "secbus.toml"
        self.log_path = self.dir / "broker.log"
        base = {
            "data_dir": str(self.data_dir),
            "ingest": {"endpoint": "tcp://127.0.0.1:0"},
            "feed": {"endpoint": "tcp://127.0.0.1:0"},
            "http": {"address": "127.0.0.1:0"},
            "handlers": {"shutdown_deadline_s": 10.0},
        }
        self.config = deep_merge(base, config or {})
        if handlers is not None:
            self.config["handlers"]["enabled"] = list(handlers)
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.ingest = self.feed = self.http = ""
        self._log_fh = None
        REGISTRY.append(self)

    # --- lifecycle ---------------------------------------------------------
    def write_config(self) -> None:
        self.config_path.write_text(to_toml(self.config) + "\n")

    def start(self) -> "BrokerProcess":
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("broker already running")
        self.write_config()
        runtime = self.data_dir / "broker.json"
        if runtime.exists():
            runtime.unlink()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SECBUS_")}
        env.update(self.extra_env)
        env["PYTHONUNBUFFERED"] = "1"
        self._log_fh = open(self.log_path, "ab")
        self._log_fh.write(f"\n=== start {time.strftime('%H:%M:%S')} ===\n".encode())
        self._log_fh.flush()
        self.proc = subprocess.Popen(
            secbus_command() + ["serve", "--config", str(self.config_path)],
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.dir,
        )
        RUNNING.add(self)
        return self

    def _runtime(self) -> dict | None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"broker exited with code {self.proc.returncode}:\n{self.log_text()}")
        try:
            data = json.loads((self.data_dir / "broker.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return data if data.get("pid") == self.proc.pid else None

    def probe_client(self) -> "RawClient":
        """The client wait_ready pings with (a subclass with CURVE gives a keyed one)."""
        return RawClient(self.ingest)

    def wait_ready(self, timeout: float = 20.0) -> "BrokerProcess":
        """Wait until the broker reported its addresses and answers PING."""
        runtime = wait_until(self._runtime, timeout, 0.02, lambda: f"broker.json from pid {self.proc.pid}\n{self.log_text()}")
        self.ingest, self.feed, self.http = runtime["ingest"], runtime.get("feed", ""), runtime["http"]
        # pin the ports so restart() binds the same ones and clients reconnect by themselves
        self.config["ingest"]["endpoint"] = self.ingest
        if self.feed:
            self.config["feed"]["endpoint"] = self.feed
        self.config["http"]["address"] = self.http
        with self.probe_client() as client:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    client.ping(timeout=0.5)
                    break
                except TimeoutError:
                    self._runtime()
                    if time.monotonic() > deadline:
                        raise
        return self

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait; returns the exit code (kills and raises if it hangs)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"broker did not stop within {timeout}s after SIGTERM:\n{self.log_text()}")
        finally:
            self._close_log()
            RUNNING.discard(self)
        return code

    def kill(self) -> None:
        """SIGKILL: the crash case (nothing flushed, no shutdown code runs)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_log()
        RUNNING.discard(self)

    def restart(self, timeout: float = 20.0) -> "BrokerProcess":
        """Stop (if running), start again on the same ports and data, wait until ready."""
        self.stop()
        return self.start().wait_ready(timeout)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def _close_log(self) -> None:
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # --- looking inside ----------------------------------------------------
    def healthz(self, timeout: float = 10.0) -> dict:
        with urllib.request.urlopen(f"http://{self.http}/healthz", timeout=timeout) as resp:
            return json.loads(resp.read())

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, str]:
        """GET any HTTP path (e.g. ``/metrics``); returns (status, body)."""
        try:
            with urllib.request.urlopen(f"http://{self.http}{path}", timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def open_log(self):
        """The broker's event log, opened beside it (WAL readers do not block it)."""
        from secbus.log.sqlite import SqliteLog

        return SqliteLog(self.data_dir, create=False)

    def events(self) -> list[dict]:
        """Every stored event, in log order, as handlers see them."""
        return self._read_stream("events")

    def traces(self) -> list[dict]:
        return self._read_stream("traces")

    def alerts(self) -> list[dict]:
        return self._read_stream("alerts")

    def _read_stream(self, stream: str) -> list[dict]:
        log = self.open_log()
        try:
            out: list[dict] = []
            after = 0
            while True:
                batch = log.read(stream, after, 10_000)
                if not batch:
                    return out
                out += batch
                after = batch[-1]["seq"]
        finally:
            log.close()

    def client(self, timeout: float = 10.0) -> RawClient:
        return RawClient(self.ingest, timeout)

    def log_text(self, tail: int = 200) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no broker log)"
        return "\n".join(lines[-tail:])


def start_broker(tmp_path: str | os.PathLike, config: dict | None = None, handlers: list[str] | None = None, env: dict | None = None, timeout: float = 20.0) -> BrokerProcess:
    """Start a broker in ``tmp_path/broker-N`` and wait until it answers PING.

    ``config`` is merged over the test defaults (free ports, temp data dir);
    ``handlers`` sets ``[handlers] enabled`` (``[]`` for none)."""
    base = Path(tmp_path)
    n = 0
    while (base / f"broker-{n}").exists():
        n += 1
    broker = BrokerProcess(base / f"broker-{n}", config=config, handlers=handlers, env=env)
    broker.start()
    try:
        broker.wait_ready(timeout)
    except BaseException:
        broker.kill()
        raise
    return broker
