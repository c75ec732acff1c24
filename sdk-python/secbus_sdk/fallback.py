"""The fallback sink of ``on_full="fallback"``: where an event goes, synchronously, when the
queue has no room.

Why it exists: ``drop`` protects the caller's latency and loses events;
``block`` loses nothing and may stall the caller.  ``fallback`` bounds the
stall to one local write and still loses nothing: the event lands in a JSONL
file (one canonical JSON object per line, appended and flushed under a lock, so
threads never interleave lines) or is handed to a callable of your own (write
it to your log pipeline, a queue, a database).  Events in the fallback sink are
not replayed by the SDK; they are complete events (id, trace, source), so a
tool can re-publish them later and the broker de-duplicates by id.

A write that fails (a full disk) raises and the event counts as dropped; what
was buffered of it is discarded so it cannot reach the file later, and the next
line starts on a line of its own (a torn fragment, from a full disk or a crash
mid-line, stays behind as one unparseable line: the file is not cut back, since
a forked child may append to it too).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any, Callable, Union

FallbackTarget = Union[str, "os.PathLike[str]", Callable[[dict], Any]]


class FallbackSink:
    """Write one event dict to a JSONL file or a callable; raises what the target raises."""

    def __init__(self, target: FallbackTarget):
        self._lock = threading.Lock()
        self._file = None
        if callable(target):
            self._call: Callable[[dict], Any] | None = target
            self.description = getattr(target, "__qualname__", repr(target))
        elif isinstance(target, (str, os.PathLike)):
            self._call = None
            self.path = os.fspath(target)
            self.description = self.path
        else:
            raise ValueError(f"fallback: expected a file path or a callable, got {type(target).__name__}")

    def write(self, event: dict) -> None:
        if self._call is not None:
            self._call(event)
            return
        line = (json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            if self._file is None:
                parent = os.path.dirname(os.path.abspath(self.path))
                os.makedirs(parent, exist_ok=True)
                # owner-only, as the spool: these are security events (Node's SDK does the same)
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
                self._file = os.fdopen(fd, "ab")
                if not _ends_with_newline(self.path):  # after a failed write or a crash mid-line
                    line = b"\n" + line
            try:
                self._file.write(line)
                self._file.flush()
            except OSError:
                self._file.raw.close()  # drops the buffered rest: closing the buffered file is then a no-op
                self._file = None
                raise

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                try:
                    self._file.close()
                finally:
                    self._file = None

    def reset_after_fork(self) -> None:
        """In a forked child: a fresh lock; the inherited file object stays usable (append mode)."""
        self._lock = threading.Lock()


def _ends_with_newline(path: str) -> bool:
    with open(path, "rb") as fh:
        if fh.seek(0, os.SEEK_END) == 0:
            return True
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"
