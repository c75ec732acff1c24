"""A real secbus broker for the tests of a handler plugin (or of an application).

Test a handler through ``secbus serve``, not by calling its hooks by hand: that
is what catches a wrong entry point, a setting read under the wrong name or a
batch shaped otherwise than expected.  :class:`Broker` runs ``secbus serve`` in
a subprocess of the current environment, on free loopback ports (it binds port
0 and reports what it got in ``<data_dir>/broker.json``), with its data and its
log (``broker.log``) in a directory of the test's; :meth:`Broker.wait_ready`
returns once ``/healthz`` answers, that is once every handler's ``startup``
ran.  :meth:`Broker.restart` keeps the ports and the data, so connected
clients reconnect by themselves.

With pytest, the fixture ``secbus_broker`` (this package registers
:mod:`secbus.pytest_plugin` under ``pytest11``) starts brokers that are stopped
at teardown::

    def test_my_handler(secbus_broker):
        broker = secbus_broker(handlers=["my-handler"], config={"handlers": {"my-handler": {"x": 1}}})
        client = broker.sdk_client()   # its spool in the test's directory
        ...
        wait_until(lambda: broker.alerts(), message="an alert")

Elsewhere, ``with running_broker(directory, ...) as broker:`` does the same.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import tomli_w

T = TypeVar("T")

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never an http_proxy for loopback


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02,
               message: str | Callable[[], str] = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Raises AssertionError naming ``message`` (a string or a callable giving
    one, evaluated at failure time) when ``timeout`` passes.  Poll like this
    rather than sleep a fixed time: the test is as fast as the broker and still
    passes on a loaded machine."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout}s waiting for: {text} (last value: {value!r})")
        time.sleep(interval)  # the polling interval of this deadline-bounded wait


def deep_merge(base: dict, override: dict) -> dict:
    """``base`` with ``override``'s tables merged in, key by key (neither is changed)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def secbus_command() -> list[str]:
    """The ``secbus`` script of this environment (``python -m secbus.cli`` without one)."""
    script = Path(sys.executable).parent / "secbus"
    return [str(script)] if script.exists() else [sys.executable, "-m", "secbus.cli"]


class Broker:
    """``secbus serve`` in a subprocess with a config of the test's; see the module docstring."""

    def __init__(self, base_dir: str | os.PathLike, config: dict | None = None, handlers: list[str] | None = None,
                 env: dict | None = None):
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
        #: the bound addresses, once :meth:`wait_ready` returned
        self.ingest = self.feed = self.http = ""
        self._log_fh = None
        self._clients: list = []

    # --- lifecycle ---------------------------------------------------------
    def write_config(self) -> None:
        self.config_path.write_text(tomli_w.dumps(self.config))

    def start(self) -> "Broker":
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
        self.proc = subprocess.Popen(secbus_command() + ["serve", "--config", str(self.config_path)],
                                     stdout=self._log_fh, stderr=subprocess.STDOUT, env=env, cwd=self.dir)
        return self

    def _runtime(self) -> dict | None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"broker exited with code {self.proc.returncode}:\n{self.log_text()}")
        try:
            data = json.loads((self.data_dir / "broker.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return data if data.get("pid") == self.proc.pid else None

    def wait_ready(self, timeout: float = 20.0) -> "Broker":
        """Wait until the broker reported its addresses and answers."""
        deadline = time.monotonic() + timeout
        runtime = wait_until(self._runtime, timeout, 0.02, lambda: f"broker.json from pid {self.proc.pid}\n{self.log_text()}")
        self.ingest, self.feed, self.http = runtime["ingest"], runtime.get("feed", ""), runtime["http"]
        # pin the ports so restart() binds the same ones and clients reconnect by themselves
        self.config["ingest"]["endpoint"] = self.ingest
        if self.feed:
            self.config["feed"]["endpoint"] = self.feed
        self.config["http"]["address"] = self.http
        self.wait_answering(deadline)
        return self

    def wait_answering(self, deadline: float) -> None:
        """Until ``/healthz`` answers ``ok``: ingest, the consumer process and every handler are up."""
        def answering() -> bool:
            self._runtime()  # a broker that died says so at once
            try:
                return self.healthz(timeout=1.0).get("status") == "ok"
            except OSError:
                return False
        wait_until(answering, max(0.0, deadline - time.monotonic()), 0.05, lambda: f"/healthz ok\n{self.log_text()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait (the broker drains its handlers); return the exit code.
        Kills it and raises AssertionError if it does not stop within ``timeout``."""
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
        return code

    def kill(self) -> None:
        """SIGKILL: the crash case (nothing flushed, no shutdown code runs)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_log()

    def restart(self, timeout: float = 20.0) -> "Broker":
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

    def sdk_client(self, service: str = "test", **options):
        """A Python SDK ``Client`` of this broker, its spool in the broker's directory (not the
        user's cache); :meth:`close_clients` (the fixture's teardown) flushes and closes it."""
        from secbus_sdk import Client

        options.setdefault("spool_dir", str(self.dir / "spool" / service))
        client = Client(endpoint=self.ingest, service=service, **options)
        self._clients.append(client)
        return client

    def close_clients(self, timeout: float = 5.0) -> None:
        while self._clients:
            self._clients.pop().close(timeout)

    # --- looking inside ----------------------------------------------------
    def healthz(self, timeout: float = 10.0) -> dict:
        with _DIRECT.open(f"http://{self.http}/healthz", timeout=timeout) as resp:
            return json.loads(resp.read())

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, str]:
        """GET any HTTP path (``/metrics``, a route your handler added); returns (status, body)."""
        try:
            with _DIRECT.open(f"http://{self.http}{path}", timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def open_log(self):
        """The broker's event log, opened beside it (WAL readers do not block it)."""
        from .log.sqlite import SqliteLog

        return SqliteLog(self.data_dir, create=False)

    def events(self) -> list[dict]:
        """Every stored event, in log order, as handlers see them."""
        return self._read_stream("events")

    def traces(self) -> list[dict]:
        """Every stored (closed) trace, in the order they closed."""
        return self._read_stream("traces")

    def alerts(self) -> list[dict]:
        """Every stored alert, in the order they were raised."""
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

    def log_text(self, tail: int = 200) -> str:
        """The last ``tail`` lines of the broker's stdout and stderr (show them when a test fails)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no broker log)"
        return "\n".join(lines[-tail:])


def next_dir(base: str | os.PathLike, prefix: str = "broker") -> Path:
    """``base/broker-N`` for the first N not taken: one directory per broker of a test."""
    n = 0
    while (Path(base) / f"{prefix}-{n}").exists():
        n += 1
    return Path(base) / f"{prefix}-{n}"


@contextmanager
def running_broker(base_dir: str | os.PathLike, config: dict | None = None, handlers: list[str] | None = None,
                   env: dict | None = None, timeout: float = 20.0,
                   started: Callable[[Broker], object] | None = None) -> Iterator[Broker]:
    """A :class:`Broker` in ``base_dir/broker-N``, ready, its SDK clients closed and the broker
    stopped at the end (killed, and AssertionError, if it does not stop).

    ``config`` is merged over free ports and the temp data dir; ``handlers``
    sets ``[handlers] enabled`` (the defaults when None); ``started`` is told of
    the broker as soon as it runs (the fixture keeps it for failure reports)."""
    broker = Broker(next_dir(base_dir), config=config, handlers=handlers, env=env).start()
    if started is not None:
        started(broker)
    try:
        broker.wait_ready(timeout)
        yield broker
    finally:
        broker.close_clients()
        broker.stop()
