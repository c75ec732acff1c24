"""Appending events to the hash-chained audit files.

Layout of the audit directory (``<data_dir>/audit`` by default)::

    audit-000001.jsonl   first file; its first record is a ``file`` record
    audit-000002.jsonl   the chain continues: its ``file`` record's prev is
                         the hash of the last record of audit-000001.jsonl
    audit.head           JSON: n, head (hash), file, seq, events, time (+ key_id, sig)

Why a head file: a hash chain shows that nothing was changed *inside* it,
but cutting records off its end leaves a shorter, valid chain.  The head is
rewritten (atomically: temp file, fsync, rename) each time the files are
made durable, so the verifier can tell that the chain should reach record n.

Durability (``fsync``): ``batch`` (default) fsyncs the file and the head
before ``on_events`` returns, so the broker moves the audit cursor only past
records that are on disk: nothing is lost even on power failure.
``interval`` fsyncs at most every ``fsync_interval`` seconds (and at
rotation and shutdown): faster, but a power failure can lose the last
interval of records, which the broker will not send again.  Against a
process crash (kill -9) both are safe: the records are written to the OS
before the hook returns.

Checkpoints: every ``checkpoint_every`` events or ``checkpoint_interval``
seconds (whichever comes first, and only if events were written since the
last one), at the end of each rotated file and at shutdown, a ``checkpoint``
record states the number of events so far and the head hash; with a
``signing_key`` it is Ed25519-signed (``signing.py``).

Redelivery: the broker delivers at least once, so on start the writer reads
the chain's last record and skips every event whose ``seq`` is not above the
last one written.  A torn last line (crash mid-write) is cut off and logged.
A write that fails (a full disk) makes the writer do the same before its next
write (:meth:`AuditWriter._resumable`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from contextlib import contextmanager
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

from secbus.log.stored import decode_rows

from . import chain
from .redact import Redactor

if TYPE_CHECKING:  # cryptography is imported only when checkpoints are signed
    from .signing import Signer

HEAD_NAME = "audit.head"
FILE_RE = re.compile(r"audit-(\d{6,})\.jsonl")
MiB = 1024 * 1024
#: The audit file's write buffer.  With the default 8 KiB, a batch of 1000
#: ~700-byte records made ~85 write() calls; each lets the interpreter lock
#: go, and in the broker's consumer process getting it back behind the busy
#: correlator and tail threads takes up to a switch interval (0.5 ms there):
#: py-spy found half of the audit thread's samples on that line.  1 MiB holds
#: a whole batch of such records, so a batch is written with one call.
WRITE_BUFFER = 1 * MiB

log = logging.getLogger("secbus.handlers.audit")


def file_name(index: int) -> str:
    return f"audit-{index:06d}.jsonl"


def audit_files(directory: Path) -> list[Path]:
    """The audit files of a directory in chain order (by their index)."""
    found = [(int(m.group(1)), p) for p in Path(directory).iterdir() if (m := FILE_RE.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_last_record(path: Path) -> tuple[dict | None, int]:
    """The last complete record of ``path`` and the byte length of the intact
    part (a torn last line, without its newline, is not part of it)."""
    size = path.stat().st_size
    chunk = 4096
    with open(path, "rb") as fh:
        while True:
            start = max(0, size - chunk)
            fh.seek(start)
            data = fh.read(size - start)
            last_nl = data.rfind(b"\n")
            prev_nl = data.rfind(b"\n", 0, max(last_nl, 0))
            if start > 0 and (last_nl < 0 or prev_nl < 0):
                chunk *= 2
                continue
            if last_nl < 0:
                return None, 0
            line = data[prev_nl + 1:last_nl]
            try:
                return json.loads(line.decode("utf-8")), start + last_nl + 1
            except ValueError as exc:
                raise ValueError(f"audit: cannot resume: the last record of {path} is not valid JSON ({exc}); "
                                 f"run `secbus audit verify` on the directory") from None


class AuditWriter:
    """Writes committed events as chained records; one instance per audit dir."""

    def __init__(self, directory: Path, *, redactor: Redactor | None = None, signer: Signer | None = None,
                 max_file_bytes: int = 64 * MiB, rotate_interval: float = 86400.0,
                 fsync: str = "batch", fsync_interval: float = 1.0,
                 checkpoint_every: int = 1000, checkpoint_interval: float = 60.0,
                 clock: Callable[[], int] = time.time_ns):
        if fsync not in ("batch", "interval"):
            raise ValueError(f"fsync: expected 'batch' or 'interval', got {fsync!r}")
        self.directory = Path(directory)
        self.redactor = redactor or Redactor()
        self.signer = signer
        self.max_file_bytes = max_file_bytes
        self.rotate_interval_ns = int(rotate_interval * 1e9)
        self.fsync_mode = fsync
        self.fsync_interval_ns = int(fsync_interval * 1e9)
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval_ns = int(checkpoint_interval * 1e9)
        self.clock = clock
        # Chain state.
        self.n = 0
        self.head = chain.GENESIS
        self.last_seq = -1
        self.events = 0          # event records in the chain (from its start)
        self.index = 0           # current file index
        self._fh = None
        self._file_bytes = 0
        self._file_time = 0
        self._since_checkpoint = 0
        self._broken = False     # a write failed part way: resume from the files first
        self._checkpoint_time = 0
        self._dirty = False      # written but not fsynced
        self._synced_time = 0
        self.skipped_redelivered = 0

    # ------------------------------------------------------------------ open
    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        files = audit_files(self.directory)
        now = self.clock()
        self._checkpoint_time = self._synced_time = now
        while files:
            last = files[-1]
            record, intact = read_last_record(last)
            if intact < last.stat().st_size:
                log.warning("audit: %s ends with a torn record (%d bytes); cutting it off",
                            last, last.stat().st_size - intact)
                os.truncate(last, intact)
            if record is None:  # empty file: the crash came before its file record
                last.unlink()
                files.pop()
                continue
            self.index = int(FILE_RE.fullmatch(last.name).group(1))
            self.n, self.head, self.last_seq = record["n"], record["hash"], record.get("seq", -1)
            self.events = record.get("events", self.events)
            with open(last, "rb") as fh:
                first = json.loads(fh.readline())
            self._file_time = first.get("time", now)
            self._check_head()
            self._fh = open(last, "ab", buffering=WRITE_BUFFER)
            self._file_bytes = intact
            log.info("audit: resuming %s at record %d (last seq %d)", last.name, self.n, self.last_seq)
            return
        self._new_file(now)
        self._sync()

    def _check_head(self) -> None:
        """Refuse to extend a chain that is shorter than its head file says.

        The head is only ever written after the records it names are on disk,
        so a head ahead of the files means records were removed while the
        writer was not running.  Resuming would overwrite the head and erase
        the evidence; stopping here keeps it for ``secbus audit verify``."""
        path = self.directory / HEAD_NAME
        try:
            head = json.loads(path.read_text(encoding="utf-8"))
            n, digest = head["n"], head["head"]
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("audit: %s is unreadable (%s); it will be rewritten from the chain", path, exc)
            return
        if n > self.n or (n == self.n and digest != self.head):
            raise ValueError(
                f"audit: {path} says the chain reaches record {n} but the audit files end at record {self.n}"
                f"{'' if n > self.n else ' with another hash'}: records were removed or rewritten while the broker "
                f"was stopped. Run `secbus audit verify {self.directory}`, keep the evidence, then move {HEAD_NAME} "
                f"aside to let the audit handler start a new head")

    # ----------------------------------------------------------------- write
    def _append(self, record: dict) -> dict:
        record["seq"] = record.get("seq", self.last_seq)
        record["events"] = self.events
        if self.signer is not None and record["kind"] == chain.CHECKPOINT:
            record["key_id"] = self.signer.key_id
            chain.seal(record, self.n + 1, self.head)
            record["sig"] = self.signer.signature(record["hash"])
            line = chain.encode_line(record)
        else:
            line = chain.seal_line(record, self.n + 1, self.head)
        self._write(line, record["hash"])
        return record

    def _write(self, line: bytes, digest: str) -> None:
        self._fh.write(line)
        self._file_bytes += len(line)
        self.n += 1
        self.head = digest
        self._dirty = True

    def _new_file(self, now: int) -> None:
        self.index += 1
        path = self.directory / file_name(self.index)
        self._fh = open(path, "xb", buffering=WRITE_BUFFER)
        self._file_bytes = 0
        self._file_time = now
        self._append({"kind": chain.FILE, "file": path.name, "index": self.index, "time": now})
        _fsync_dir(self.directory)

    def _checkpoint(self, now: int) -> None:
        self._append({"kind": chain.CHECKPOINT, "head": self.head, "time": now})
        self._since_checkpoint = 0
        self._checkpoint_time = now

    def _rotate(self, now: int) -> None:
        if self._since_checkpoint:
            self._checkpoint(now)
        self._sync()
        self._fh.close()
        self._new_file(now)

    def write_stored(self, rows: Sequence[Sequence]) -> int:
        """:meth:`write_events` for stored rows ``(seq, received_ns, publisher, tenant,
        body)``; rows already written (by ``seq``) are skipped before they are decoded,
        and the bytes tell which events hold only JSON's plain types (:func:`chain.plain_msgpack`)."""
        with self._resumable():
            if rows and rows[0][0] <= self.last_seq:  # a redelivery (rows are in seq order)
                fresh = [row for row in rows if row[0] > self.last_seq]
                self.skipped_redelivered += len(rows) - len(fresh)
                rows = fresh
            return self._write_events(decode_rows(rows), [chain.plain_msgpack(row[4]) for row in rows])

    def write_events(self, events: Iterable[dict], plain: Iterable[bool] | None = None) -> int:
        """Append the events not yet written (by ``seq``); return how many were.

        ``plain``: per event, whether it is known to hold only str, int, bool, None, dicts and
        lists (what :func:`chain.seal_event_line` would otherwise check)."""
        with self._resumable():
            return self._write_events(events, plain)

    @contextmanager
    def _resumable(self) -> Iterator[None]:
        """A write that fails part way (a full disk: EFBIG, ENOSPC) leaves the chain state
        (``n``, ``head``, ``last_seq``) ahead of the file, and bytes in the write buffer that
        may or may not reach it later: the buffer is dropped unwritten and the next write
        resumes from the files, exactly as a restarted writer would (a torn last line cut
        off, the redelivered events written again).  Without this, a retried batch skipped
        events the writer had counted but never written: a hole in the trail."""
        if self._broken:
            log.warning("audit: resuming from the files after a failed write")
            self.open()
            self._broken = False
        try:
            yield
        except BaseException:
            self._broken = True
            fh, self._fh = self._fh, None
            if fh is not None:
                fh.raw.close()  # the buffered writer then never flushes (closing it is a no-op)
            self._dirty = False
            self._since_checkpoint = 0
            raise

    def _write_events(self, events: Iterable[dict], plain: Iterable[bool] | None) -> int:
        written = 0
        now = self.clock()
        if self.rotate_interval_ns and now - self._file_time >= self.rotate_interval_ns and self.n:
            self._rotate(now)
        for event, known_plain in zip(events, plain if plain is not None else repeat(False)):
            seq = event.get("seq", -1)
            if seq <= self.last_seq:
                self.skipped_redelivered += 1
                continue
            if self._file_bytes >= self.max_file_bytes:
                self._rotate(now)
            stored, removed = self.redactor.redact(event)
            self.last_seq = seq
            self.events += 1
            self._since_checkpoint += 1
            self._write(*chain.seal_event_line(stored, seq, self.events, removed, self.n + 1, self.head, known_plain))
            written += 1
            if self._since_checkpoint >= self.checkpoint_every:
                self._checkpoint(now)
        if self._since_checkpoint and now - self._checkpoint_time >= self.checkpoint_interval_ns:
            self._checkpoint(now)
        if self.fsync_mode == "batch" or now - self._synced_time >= self.fsync_interval_ns:
            self._sync()
        else:
            self._fh.flush()  # in the OS: safe against a process crash
        return written

    # ------------------------------------------------------------ durability
    def _sync(self) -> None:
        if self._fh is None:
            return
        self._fh.flush()
        if self._dirty:
            os.fsync(self._fh.fileno())
            self._write_head()
            self._dirty = False
        self._synced_time = self.clock()

    def _write_head(self) -> None:
        head = {"n": self.n, "head": self.head, "file": file_name(self.index), "seq": self.last_seq,
                "events": self.events, "time": self.clock()}
        if self.signer is not None:
            head["key_id"] = self.signer.key_id
            head["sig"] = self.signer.signature(chain.record_hash(head))
        tmp = self.directory / (HEAD_NAME + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(chain.encode_line(head))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.directory / HEAD_NAME)

    def close(self) -> None:
        """Checkpoint what is not yet covered, make it durable, close the file."""
        if self._fh is None:
            return
        if self._since_checkpoint:
            self._checkpoint(self.clock())
        self._sync()
        _fsync_dir(self.directory)
        self._fh.close()
        self._fh = None
