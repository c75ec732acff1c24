"""``alert-file``: each alert as one JSON object per line in a file.

Default path ``<data_dir>/alerts.jsonl`` (setting ``path``).  Alerts arrive
at least once; each line carries the alert's ``seq`` in the alerts stream and
the output skips any alert whose ``seq`` is not above the last line's, so a
redelivery after a restart never writes an alert twice.  ``fsync = true``
makes each line durable before the cursor moves (default false: the line
is in the OS, safe against a broker crash, not against power loss).  A write
that fails (a full disk) is undone: the file is cut back to its last whole
line and the buffered bytes are dropped, so the retried alert is written once,
whole, when there is room again.
"""

from __future__ import annotations

import json
import os

from secbus import hookimpl

from .._settings import Configured, Settings
from ..audit.writer import read_last_record
from .common import min_severity, passes


class FileOutput(Configured):
    def __init__(self) -> None:
        self._fh = None
        self.last_seq = -1

    def configure(self, name, settings, data_dir) -> None:
        s = Settings(name, settings)
        self.path = s.path("path", "alerts.jsonl", base=data_dir)
        self.fsync = s.boolean("fsync", False)
        self.minimum = min_severity(s)
        s.reject_unknown()

    @hookimpl
    def startup(self, app) -> None:
        self.configure(app.name, app.settings, app.data_dir)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            try:
                record, intact = read_last_record(self.path)
            except ValueError:
                record, intact = None, self.path.stat().st_size
            if intact < self.path.stat().st_size:
                os.truncate(self.path, intact)  # a torn last line from a crash
            if record is not None:
                self.last_seq = record.get("seq", -1)
        self._open()

    def _open(self) -> None:
        self._fh = open(self.path, "ab")
        self._good_bytes = self._fh.tell()  # the file up to its last whole line

    @hookimpl
    def on_alert(self, alert: dict) -> None:
        seq = alert.get("seq", -1)
        if seq != -1 and seq <= self.last_seq:
            return
        if passes(alert, self.minimum):
            self._append(json.dumps(alert, sort_keys=True, ensure_ascii=False, default=repr).encode("utf-8") + b"\n")
        self.last_seq = max(self.last_seq, seq)

    def _append(self, line: bytes) -> None:
        if self._fh is None:
            self._open()
        try:
            self._fh.write(line)
            self._fh.flush()
            if self.fsync:
                os.fsync(self._fh.fileno())
        except OSError:
            self._fh.raw.close()  # drops the buffer: closing the buffered file is then a no-op
            self._fh = None  # opened again for the retry
            os.truncate(self.path, self._good_bytes)
            raise  # the runner retries the alert
        self._good_bytes += len(line)

    @hookimpl
    def shutdown(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


handler = FileOutput()
