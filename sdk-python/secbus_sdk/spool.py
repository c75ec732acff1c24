"""The disk spool: batches the broker has not acknowledged, kept across outages and restarts.

Why hand-written, not a library: the spool holds batches that are already
encoded as the msgpack ``events`` array of a PUB body, so a replay sends the
bytes as they are.  What it needs is an append-only log with an exact byte
bound, out-of-order acknowledgement within a small window, deletion only after
ACK, torn-tail detection and a lock per process.  ``persist-queue`` bounds by
item count (its file queue has no checksums; its SQLite queues never give disk
space back without VACUUM); stdlib ``sqlite3`` has the same space problem and
adds a B-tree to what is a FIFO of blobs.  Segment files with a length and a
CRC32 per record are about 200 lines, readable by any language (the Node SDK
can share the format) and give the space back by unlinking a file.

Layout::

    <spool_dir>/lane-<n>/lock              flock(2) held by the one process using the lane
    <spool_dir>/lane-<n>/<20 digits>.seg   segments, replayed in name order
    <spool_dir>/lane-<n>/<20 digits>.ack   offsets of the segment's ACKed records

Record (little-endian)::

    u32 length   u32 events   u32 crc32(length, events, payload)   payload[length]

``payload`` is a msgpack array of canonical events.  A segment is sealed once it
reaches ``segment_bytes``; it is unlinked once every record in it is ACKed.
Until then ``<20 digits>.ack`` beside it lists (u64 little-endian) the offsets of
its records already ACKed, so a restart in the middle of a replay re-sends
only what was not acknowledged (a lost sidecar write costs a duplicate, which
the broker recognises by event id; only offsets of real records count).

Lanes make two processes on one ``spool_dir`` safe: each process locks the
first free lane (a gunicorn worker forked from a parent that holds lane 0
takes lane 1).  At start, a client also adopts the segments of every lane no
live process holds (its lock is free), moving them into its own lane by
rename, so a spool left by a killed process is replayed by whichever client
starts next on the same ``spool_dir``.

Bound: appends are refused (the caller applies its full policy) once the
segment files would exceed ``max_bytes``.  Headers count; the bound is exact.

Durability: every record is written with one ``write(2)`` as soon as it is
spooled, so a killed process loses nothing it spooled.  ``fsync`` runs on
segment rollover, at most once a second while spooling (:meth:`sync_if_due`)
and at close, so a power loss can cost up to about a second of spooled
records.  A crash mid-write leaves a torn tail: when read, a record whose
length runs past the end of the file or whose CRC does not match ends that
segment; the rest of the segment is skipped (never replayed as garbage),
counted in ``torn`` and logged, and the file is truncated there.

Not thread-safe: only the sender thread uses a :class:`Spool`.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import time
import zlib
from dataclasses import dataclass, field

log = logging.getLogger("secbus_sdk")

_HEADER = struct.Struct("<III")
_ACK = struct.Struct("<Q")
HEADER_BYTES = _HEADER.size
MAX_LANES = 256
SYNC_INTERVAL = 1.0
MAX_RECORD_BYTES = 64 * 1024 * 1024  # a length above this is a torn or corrupt header


class SpoolError(Exception):
    """The spool directory cannot be used (permissions, no free lane)."""


@dataclass
class _Segment:
    seq: int
    path: str
    size: int = 0
    records: int = 0
    events: int = 0
    acked: set = field(default_factory=set)  # offsets of ACKed records
    acked_events: int = 0
    sealed: bool = True


@dataclass(frozen=True)
class Record:
    """One spooled batch as read back: ``token`` is what :meth:`Spool.ack` takes."""

    token: tuple
    payload: bytes
    events: int


def encode_record(payload: bytes, events: int) -> bytes:
    head = struct.pack("<II", len(payload), events)
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + struct.pack("<I", crc) + payload


class Spool:
    """A bounded, persistent FIFO of encoded batches in one lane of ``root``."""

    def __init__(self, root: str, max_bytes: int, segment_bytes: int | None = None):
        self.root = root
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(64 * 1024, min(4 * 1024 * 1024, max_bytes // 8))
        self.torn = 0
        #: why the last append wrote nothing although the batch fitted (a full disk), or None
        self.write_error: str | None = None
        self._segments: list[_Segment] = []
        self._bytes = 0
        self._write_fd: int | None = None
        self._write_seg: _Segment | None = None
        self._next_seq = 0
        self._read_index = 0  # into self._segments
        self._read_offset = 0
        self._read_fd: int | None = None
        self._read_fd_seq = -1
        self._dirty = False
        self._last_sync = 0.0
        self._loaded = False
        try:
            os.makedirs(root, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise SpoolError(f"spool_dir: cannot create {root!r}: {exc.strerror}") from None
        mode = os.stat(root).st_mode & 0o777
        if mode & 0o077:  # an existing dir keeps its mode: say so, as the broker does for its data dir
            log.warning("secbus spool: %s is open to other users (mode %o): spooled events are security events; "
                        "chmod 700 it", root, mode)
        self.lane, self.lane_dir, self._lock_fd = self._take_lane()

    # ------------------------------------------------------------------ lanes

    def _take_lane(self) -> tuple[int, str, int]:
        for lane in range(MAX_LANES):
            lane_dir = os.path.join(self.root, f"lane-{lane}")
            fd = self._try_lock(lane_dir)
            if fd is not None:
                return lane, lane_dir, fd
        raise SpoolError(f"spool_dir: all {MAX_LANES} lanes of {self.root!r} are held by live processes")

    @staticmethod
    def _try_lock(lane_dir: str) -> int | None:
        try:
            os.makedirs(lane_dir, mode=0o700, exist_ok=True)
            fd = os.open(os.path.join(lane_dir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise SpoolError(f"spool_dir: cannot use {lane_dir!r}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise SpoolError(f"spool_dir: cannot lock {lane_dir!r}: {exc.strerror}") from None
        return fd

    def _adopt_orphans(self) -> None:
        """Move the segments of lanes no live process holds into this lane."""
        try:
            names = sorted(os.listdir(self.root))
        except OSError:
            return
        for name in names:
            if not name.startswith("lane-") or name == f"lane-{self.lane}":
                continue
            lane_dir = os.path.join(self.root, name)
            if not os.path.isdir(lane_dir) or not _segment_names(lane_dir):
                continue
            fd = self._try_lock(lane_dir)
            if fd is None:
                continue  # a live process owns it
            try:
                moved = 0
                for seg_name in _segment_names(lane_dir):
                    target = os.path.join(self.lane_dir, f"{self._next_seq:020d}.seg")
                    self._next_seq += 1
                    source = os.path.join(lane_dir, seg_name)
                    if os.path.exists(_ack_path(source)):  # the sidecar first: never a segment without its ACKs
                        os.rename(_ack_path(source), _ack_path(target))
                    os.rename(source, target)
                    moved += 1
                if moved:
                    log.info("secbus spool: adopted %d segment(s) left in %s by an earlier process", moved, lane_dir)
            finally:
                os.close(fd)

    # ------------------------------------------------------------------ load

    def load(self) -> None:
        """Adopt orphan lanes, then index and check every segment (torn tails cut)."""
        if self._loaded:
            return
        self._loaded = True
        own = _segment_names(self.lane_dir)
        self._next_seq = (int(own[-1][:-4]) + 1) if own else 0
        self._adopt_orphans()
        for name in _segment_names(self.lane_dir):
            seg = _Segment(int(name[:-4]), os.path.join(self.lane_dir, name))
            self._scan(seg)
            if seg.records and len(seg.acked) < seg.records:
                self._segments.append(seg)
                self._bytes += seg.size
            else:
                _unlink(seg.path)
                _unlink(_ack_path(seg.path))
        for name in os.listdir(self.lane_dir):  # sidecars whose segment is gone
            if name.endswith(".ack") and not os.path.exists(os.path.join(self.lane_dir, name[:-4] + ".seg")):
                _unlink(os.path.join(self.lane_dir, name))
        if self._segments:
            self._next_seq = self._segments[-1].seq + 1
            log.info("secbus spool: %d event(s) in %d segment(s) to replay from %s", self.events, len(self._segments), self.lane_dir)

    def _scan(self, seg: _Segment) -> None:
        try:
            with open(seg.path, "rb") as f:
                data = f.read()
        except OSError as exc:
            log.error("secbus spool: cannot read %s: %s; skipped", seg.path, exc.strerror)
            return
        offset = 0
        counts: dict[int, int] = {}
        while offset < len(data):
            parsed = _parse(data, offset)
            if parsed is None:
                self._cut(seg, offset, len(data) - offset)
                break
            length, events = parsed
            counts[offset] = events
            seg.records += 1
            seg.events += events
            offset += HEADER_BYTES + length
        seg.size = offset
        for acked in _read_acks(seg.path):
            if acked in counts and acked not in seg.acked:  # only real record boundaries count
                seg.acked.add(acked)
                seg.acked_events += counts[acked]

    def _cut(self, seg: _Segment, offset: int, lost: int) -> None:
        self.torn += 1
        log.warning(
            "secbus spool: torn or corrupt record at byte %d of %s (%d byte(s) to the end): skipped, not replayed",
            offset, seg.path, lost,
        )
        try:
            os.truncate(seg.path, offset)
        except OSError:
            pass

    # ------------------------------------------------------------------ write

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def events(self) -> int:
        return sum(s.events - s.acked_events for s in self._segments)

    @property
    def empty(self) -> bool:
        return not self._segments

    def fits(self, payload_len: int) -> bool:
        return self._bytes + HEADER_BYTES + payload_len <= self.max_bytes

    def append(self, payload: bytes, events: int) -> bool:
        """Write one batch; ``False`` (nothing written) if it would break the bound."""
        self.load()
        if not self.fits(len(payload)):
            return False
        record = encode_record(payload, events)
        seg = self._write_seg
        if seg is None or seg.size >= self.segment_bytes:
            try:
                seg = self._roll()
            except OSError as exc:
                self.write_error = f"cannot start a segment in {self.lane_dir}: {exc.strerror}"
                log.error("secbus spool: %s", self.write_error)
                return False
        offset = seg.size
        try:
            _write_all(self._write_fd, record)
        except OSError as exc:
            # Put the file back as it was, so no half record stays behind.
            try:
                os.ftruncate(self._write_fd, offset)
            except OSError:
                pass
            self.write_error = f"write to {seg.path} failed: {exc.strerror}"
            log.error("secbus spool: %s", self.write_error)
            return False
        self.write_error = None
        seg.size += len(record)
        seg.records += 1
        seg.events += events
        self._bytes += len(record)
        self._dirty = True
        return True

    def _roll(self) -> _Segment:
        if self._write_fd is not None:
            _fsync(self._write_fd)
            os.close(self._write_fd)
            self._write_seg.sealed = True
            self._write_fd = None
            self._write_seg = None
            self._dirty = False
        seg = _Segment(self._next_seq, os.path.join(self.lane_dir, f"{self._next_seq:020d}.seg"), sealed=False)
        self._next_seq += 1
        os.makedirs(self.lane_dir, mode=0o700, exist_ok=True)  # in case it was removed under us
        _unlink(_ack_path(seg.path))  # a stale sidecar must never mark new records as acknowledged
        self._write_fd = os.open(seg.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        _fsync_dir(self.lane_dir)
        self._write_seg = seg
        self._segments.append(seg)
        return seg

    def sync_if_due(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self._dirty and now - self._last_sync >= SYNC_INTERVAL:
            self.sync(now)

    def sync(self, now: float | None = None) -> None:
        if self._write_fd is not None and self._dirty:
            _fsync(self._write_fd)
        self._dirty = False
        self._last_sync = time.monotonic() if now is None else now

    # ------------------------------------------------------------------ read

    def next_record(self) -> Record | None:
        """The next record not yet handed out since the last :meth:`rewind`, in order."""
        self.load()
        while self._read_index < len(self._segments):
            seg = self._segments[self._read_index]
            if self._read_offset >= seg.size:
                if self._read_index + 1 >= len(self._segments):
                    return None  # stay on the last segment: it may still grow
                self._read_index += 1
                self._read_offset = 0
                continue
            offset = self._read_offset
            parsed = None
            try:
                header = self._pread(seg, HEADER_BYTES, offset)
                if len(header) == HEADER_BYTES:
                    length, events, crc = _HEADER.unpack(header)
                    if length <= MAX_RECORD_BYTES:
                        payload = self._pread(seg, length, offset + HEADER_BYTES)
                        if len(payload) == length and zlib.crc32(payload, zlib.crc32(header[:8])) == crc:
                            parsed = (length, events, payload)
            except OSError as exc:
                self._lose_segment(seg, exc)
                continue
            if parsed is None:
                # Corrupted since it was scanned or written (disk trouble): skip the rest.
                self._cut(seg, offset, seg.size - offset)
                self._forget_tail(seg, offset)
                continue
            length, events, payload = parsed
            self._read_offset = offset + HEADER_BYTES + length
            if offset in seg.acked:
                continue
            return Record((seg.seq, offset, events), payload, events)
        return None

    def _lose_segment(self, seg: _Segment, exc: OSError) -> None:
        """A segment that can no longer be read (removed or broken under us): count, log, forget."""
        self.torn += 1
        log.error("secbus spool: cannot read %s (%s): %d unacknowledged event(s) in it are lost",
                  seg.path, exc.strerror or exc, seg.events - seg.acked_events)
        _unlink(_ack_path(seg.path))
        if self._read_fd_seq == seg.seq and self._read_fd is not None:
            os.close(self._read_fd)
            self._read_fd, self._read_fd_seq = None, -1
        if seg is self._write_seg:
            os.close(self._write_fd)
            self._write_fd, self._write_seg, self._dirty = None, None, False
        index = self._segments.index(seg)
        del self._segments[index]
        self._bytes -= seg.size
        if index < self._read_index:
            self._read_index -= 1
        elif index == self._read_index:
            self._read_offset = 0

    def _forget_tail(self, seg: _Segment, offset: int) -> None:
        # Recount what is left of this segment and account the lost bytes.
        lost_bytes = seg.size - offset
        self._bytes -= lost_bytes
        seg.size = offset
        records = events = acked_events = 0
        pos = 0
        while pos < offset:
            head = self._pread(seg, HEADER_BYTES, pos)
            length, n, _ = _HEADER.unpack(head)
            records += 1
            events += n
            if pos in seg.acked:
                acked_events += n
            pos += HEADER_BYTES + length
        seg.records, seg.events = records, events
        seg.acked = {o for o in seg.acked if o < offset}
        seg.acked_events = acked_events
        if seg is self._write_seg:
            try:
                os.ftruncate(self._write_fd, offset)
            except OSError:
                pass
        self._maybe_delete(seg)

    def _pread(self, seg: _Segment, size: int, offset: int) -> bytes:
        if self._read_fd_seq != seg.seq:
            if self._read_fd is not None:
                os.close(self._read_fd)
                self._read_fd = None
            self._read_fd = os.open(seg.path, os.O_RDONLY | os.O_CLOEXEC)
            self._read_fd_seq = seg.seq
        return os.pread(self._read_fd, size, offset)

    def ack(self, token: tuple) -> None:
        """The broker acknowledged this record: forget it; unlink its segment when all are."""
        seq, offset, events = token
        for seg in self._segments:
            if seg.seq == seq:
                if offset not in seg.acked:
                    seg.acked.add(offset)
                    seg.acked_events += events
                    if len(seg.acked) < seg.records:
                        _append_ack(seg.path, offset)
                self._maybe_delete(seg)
                return

    def _maybe_delete(self, seg: _Segment) -> None:
        if len(seg.acked) < seg.records:
            return
        if seg is self._write_seg:
            # Everything written so far is acknowledged: close it, a new one starts on demand.
            os.close(self._write_fd)
            self._write_fd = None
            self._write_seg = None
            self._dirty = False
        if self._read_fd_seq == seg.seq and self._read_fd is not None:
            os.close(self._read_fd)
            self._read_fd = None
            self._read_fd_seq = -1
        index = self._segments.index(seg)
        del self._segments[index]
        self._bytes -= seg.size
        _unlink(seg.path)
        _unlink(_ack_path(seg.path))
        if index < self._read_index:
            self._read_index -= 1
        elif index == self._read_index:
            self._read_offset = 0

    def rewind(self) -> None:
        """Hand out every unacknowledged record again (after the bus went away mid-replay)."""
        self._read_index = 0
        self._read_offset = 0

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """Sync, close files and release the lane."""
        self.sync()
        for fd in (self._write_fd, self._read_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._write_fd = self._read_fd = None
        self._write_seg = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def abandon(self) -> None:
        """In a forked child: drop the inherited descriptors without touching the parent's lock.

        The flock belongs to the open file description the parent still holds;
        closing the child's copy leaves it held (an explicit LOCK_UN would not)."""
        for fd in (self._write_fd, self._read_fd, self._lock_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._write_fd = self._read_fd = self._lock_fd = None


class NoSpool:
    """Stands in for :class:`Spool` when ``spool_dir`` cannot be used: nothing is written, so
    batches that would be spooled stay in memory (bounded) and new events meet ``on_full``."""

    lane = -1
    torn = 0
    bytes = 0
    events = 0
    empty = True

    def __init__(self, root: str, reason: str, max_bytes: int = 0):
        self.root = root
        self.lane_dir = f"(no spool: {reason})"
        self.max_bytes = max_bytes
        self.write_error = reason

    def load(self) -> None:
        pass

    def fits(self, payload_len: int) -> bool:
        return False

    def append(self, payload: bytes, events: int) -> bool:
        return False

    def next_record(self) -> None:
        return None

    def ack(self, token: tuple) -> None:
        pass

    def rewind(self) -> None:
        pass

    def sync_if_due(self, now: float | None = None) -> None:
        pass

    def sync(self, now: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass

    def abandon(self) -> None:
        pass


def _parse(data: bytes, offset: int) -> tuple[int, int] | None:
    if len(data) - offset < HEADER_BYTES:
        return None
    length, events, crc = _HEADER.unpack_from(data, offset)
    end = offset + HEADER_BYTES + length
    if length > MAX_RECORD_BYTES or end > len(data):
        return None
    if zlib.crc32(data[offset + HEADER_BYTES:end], zlib.crc32(data[offset:offset + 8])) != crc:
        return None
    return length, events


def _ack_path(segment_path: str) -> str:
    """The sidecar of a segment: the offsets of its records the broker acknowledged."""
    return segment_path[:-4] + ".ack"


def _append_ack(segment_path: str, offset: int) -> None:
    """Remember an ACK across restarts (8 bytes, one write, no fsync: losing it costs a
    duplicate re-send, which the broker recognises, never an event)."""
    try:
        fd = os.open(_ack_path(segment_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        os.write(fd, _ACK.pack(offset))
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_acks(segment_path: str) -> list[int]:
    try:
        with open(_ack_path(segment_path), "rb") as f:
            data = f.read()
    except OSError:
        return []
    whole = len(data) - len(data) % _ACK.size  # a torn last entry is ignored
    return [value for (value,) in _ACK.iter_unpack(data[:whole])]


def _segment_names(lane_dir: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(lane_dir) if n.endswith(".seg") and n[:-4].isdigit())
    except OSError:
        return []


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        log.warning("secbus spool: fsync failed: %s", exc.strerror)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("secbus spool: cannot remove %s: %s", path, exc.strerror)
