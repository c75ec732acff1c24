"""The audit writer in a process of its own (``worker = true``, the default).

Why: in the broker's consumer process every handler shares one interpreter
lock, and audit does the most Python work per event (redact, serialise, hash:
~10 us alone, 13-19 us beside a busy thread; benchmarks/FINDINGS.md section 6).
It was the handler that fell behind first: at 30k events/s it needed about a
third of that lock by itself.  Here the handler thread takes each batch as the
log stores it (``on_events(stored)``: rows of msgpack, never decoded in the
consumer process), encodes the rows with one msgspec call (~0.2 us per event),
hands them to a child process that decodes them for its
:class:`~.writer.AuditWriter`, and waits for the answer, so ``on_events``
returns only once the records are written (and fsynced, with ``fsync =
"batch"``), exactly as in-process.

Failures: an error in the child is raised from ``on_events`` (the runner logs
it and retries the batch with backoff); the child then exits, and the next
call starts a new one, which resumes the chain from the files and skips what
was already written (by ``seq``, as on any redelivery).  The child exits when
its pipes close, so it never outlives the consumer process; it ignores
SIGINT/SIGTERM like its parent, which closes it at shutdown.

It is a plain ``python -m secbus.handlers.audit.worker`` (two pipes of
``multiprocessing.connection``: requests as msgpack ``[kind, value]``, answers
pickled), not a ``multiprocessing``
child: a spawned one re-imports the broker's whole main module and brings a
resource tracker process along (~40 + 13 MB idle, against ~23 MB this way).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from secbus import gcpolicy
from secbus.pipes import end_child, start_child

log = logging.getLogger("secbus.handlers.audit")


class WorkerError(RuntimeError):
    """The audit writer process failed a request or died."""


class WriterProcess:
    """A child process that owns one :class:`~.writer.AuditWriter`."""

    def __init__(self, name: str, settings: dict[str, Any], data_dir):
        self.name = name
        self._args = (name, dict(settings), os.fspath(data_dir) if data_dir is not None else None)
        self._encode = msgspec.msgpack.Encoder().encode
        self._reader: Connection | None = None
        self._writer: Connection | None = None
        self._process: subprocess.Popen | None = None
        self._last: Any = None
        #: what the writer reported when it opened: directory, n, last_seq
        self.opened: dict[str, Any] = {}

    def start(self) -> dict[str, Any]:
        """Start the writer process (a fresh interpreter: the consumer process has threads,
        so a fork could inherit a lock another thread held) and wait until the chain is open."""
        self._process, self._reader, self._writer = start_child(__name__)
        self._call(("open", self._args))
        self.opened = self._last
        return self.opened

    def write_stored(self, rows: list[tuple]) -> None:
        """Write the events of these stored rows (``on_events``' ``stored``): the rows go to
        the child as they are, one msgspec call, and the child decodes them."""
        if self._process is None or self._process.poll() is not None:
            if self._process is not None:
                log.warning("audit writer process ended (exit code %s); starting a new one", self._process.returncode)
            self._stop_child()
            self.start()  # resumes the chain from the files
        self._call(("write", rows))

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            try:
                self._call(("close", None))
            finally:
                self._stop_child()

    def _call(self, message: tuple) -> None:
        try:
            self._writer.send_bytes(self._encode(message))  # one msgspec call, no pickle copy
            status, value = self._reader.recv()
        except (EOFError, OSError) as exc:
            self._stop_child()
            code = self._process.returncode if self._process is not None else None
            raise WorkerError(f"audit writer process ended (exit code {code}, {type(exc).__name__})") from None
        if status == "error":
            self._stop_child()  # it exits after an error; the next write starts a fresh one
            raise WorkerError(f"audit writer process: {value}")
        self._last = value

    def _stop_child(self) -> None:
        end_child(self._process, self._reader, self._writer, wait_s=10.0)
        self._reader = self._writer = None


def serve(reader: Connection, writer_conn: Connection) -> None:
    """The child's loop: ("open", (name, settings, data_dir)) first, then ("write", rows) and ("close", None)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    decode = msgspec.msgpack.Decoder().decode
    try:
        kind, (name, settings, data_dir) = decode(reader.recv_bytes())
    except (EOFError, OSError, ValueError, TypeError, msgspec.DecodeError):
        return
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s %(name)s[{name} writer]: %(message)s")
    from .plugin import writer_from_settings  # here: the plugin module imports this one

    try:
        writer = writer_from_settings(name, settings, data_dir)
        writer.open()
    except Exception as exc:
        writer_conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    writer_conn.send(("ok", {"directory": str(writer.directory), "n": writer.n, "last_seq": writer.last_seq}))
    gcpolicy.tune()
    while True:
        try:
            kind, body = decode(reader.recv_bytes())
        except (EOFError, OSError):  # the consumer process is gone: make what was written durable
            writer.close()
            return
        try:
            if kind == "write":
                writer.write_stored(body)
            elif kind == "close":
                writer.close()
                writer_conn.send(("ok", None))
                return
            else:
                raise ValueError(f"unknown request {kind!r}")
        except Exception as exc:
            log.exception("audit writer: %s failed", kind)
            writer_conn.send(("error", f"{type(exc).__name__}: {exc}"))
            return  # the chain state may be half-updated: a fresh process resumes from the files
        writer_conn.send(("ok", None))


if __name__ == "__main__":
    serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
