"""The audit writer in a process of its own (``worker = true``, the default).

Why: in the broker's consumer process every handler shares one interpreter
lock, and audit does the most Python work per event (redact, serialise, hash:
~10 us alone, 13-19 us beside a busy thread; benchmarks/FINDINGS.md section 6).
It was the handler that fell behind first: at 30k events/s it needed about a
third of that lock by itself.  Here the handler thread encodes each batch with
msgspec (one C call, ~1 us per event), hands it to a child process running the
:class:`~.writer.AuditWriter`, and waits for the answer, so ``on_events``
returns only once the records are written (and fsynced, with ``fsync =
"batch"``), exactly as in-process.

Failures: an error in the child is raised from ``on_events`` (the runner logs
it and retries the batch with backoff); the child then exits, and the next
call starts a new one, which resumes the chain from the files and skips what
was already written (by ``seq``, as on any redelivery).  The child exits when
its pipe closes, so it never outlives the consumer process; it ignores
SIGINT/SIGTERM like its parent, which closes it at shutdown.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
from typing import Any

import msgspec

log = logging.getLogger("secbus.handlers.audit")

# The consumer process has threads: a forked copy could inherit a held lock.
_CONTEXT = multiprocessing.get_context("spawn")


class WorkerError(RuntimeError):
    """The audit writer process failed a request or died."""


class WriterProcess:
    """A child process that owns one :class:`~.writer.AuditWriter`."""

    def __init__(self, name: str, settings: dict[str, Any], data_dir):
        self.name = name
        self._args = (name, dict(settings), os.fspath(data_dir) if data_dir is not None else None)
        self._encode = msgspec.msgpack.Encoder().encode
        self._conn = None
        self._process = None
        #: what the writer reported when it opened: directory, n, last_seq
        self.opened: dict[str, Any] = {}

    def start(self) -> dict[str, Any]:
        mine, theirs = _CONTEXT.Pipe()
        process = _CONTEXT.Process(target=serve, args=(theirs, *self._args), name=f"secbus-{self.name}", daemon=True)
        process.start()
        theirs.close()
        self._conn, self._process = mine, process
        self.opened = self._answer()
        return self.opened

    def write_events(self, events: list[dict]) -> None:
        if self._process is None or not self._process.is_alive():
            if self._process is not None:
                log.warning("audit writer process ended (exit code %s); starting a new one", self._process.exitcode)
            self._stop_child()
            self.start()  # resumes the chain from the files
        self._call(("write", self._encode(events)))

    def close(self) -> None:
        if self._process is not None and self._process.is_alive():
            try:
                self._call(("close", None))
            finally:
                self._stop_child()

    def _call(self, message: tuple) -> Any:
        try:
            self._conn.send(message)
        except OSError as exc:
            raise self._died(exc) from None
        return self._answer()

    def _answer(self) -> Any:
        try:
            status, value = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise self._died(exc) from None
        if status == "error":
            self._stop_child()  # it exits after an error; the next write starts a fresh one
            raise WorkerError(f"audit writer process: {value}")
        return value

    def _died(self, exc: BaseException) -> WorkerError:
        self._stop_child()
        code = self._process.exitcode if self._process is not None else None
        return WorkerError(f"audit writer process ended (exit code {code}, {type(exc).__name__})")

    def _stop_child(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._process is not None:
            self._process.join(10.0)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
        self._conn = None


def serve(conn, name: str, settings: dict[str, Any], data_dir: str | None) -> None:
    """The child's loop: open the writer, then answer ("write", body) and ("close", None)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s %(name)s[{name} writer]: %(message)s")
    from .plugin import writer_from_settings  # here: the plugin module imports this one

    try:
        writer = writer_from_settings(name, settings, data_dir)
        writer.open()
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ok", {"directory": str(writer.directory), "n": writer.n, "last_seq": writer.last_seq}))
    decode = msgspec.msgpack.Decoder().decode
    while True:
        try:
            kind, body = conn.recv()
        except (EOFError, OSError):  # the consumer process is gone: make what was written durable
            writer.close()
            return
        try:
            if kind == "write":
                writer.write_events(decode(body))
            elif kind == "close":
                writer.close()
                conn.send(("ok", None))
                return
            else:
                raise ValueError(f"unknown request {kind!r}")
        except Exception as exc:
            log.exception("audit writer: %s failed", kind)
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
            return  # the chain state may be half-updated: a fresh process resumes from the files
        conn.send(("ok", None))
