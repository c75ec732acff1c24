"""The audit writer process's request pipe (handlers/audit/worker.py), without a broker."""

from __future__ import annotations

import fcntl
import subprocess

from secbus.handlers.audit.worker import WriterProcess
from secbus.pipes import PIPE_BYTES
from support.broker import secbus_command
from support.events import make_event, stored_row


def test_a_whole_batch_fits_the_request_pipe_and_is_written_and_verifies(tmp_path):
    writer = WriterProcess("audit", {}, tmp_path)
    writer.start()
    try:
        assert fcntl.fcntl(writer._writer.fileno(), fcntl.F_GETPIPE_SZ) == PIPE_BYTES
        rows = [stored_row(make_event(), seq=i + 1) for i in range(1000)]
        assert len(writer._encode(("write", rows))) < PIPE_BYTES  # one write, no blocking halfway
        writer.write_stored(rows)
    finally:
        writer.close()
    files = sorted((tmp_path / "audit").glob("*.jsonl"))
    lines = b"".join(f.read_bytes() for f in files).splitlines()
    assert sum(b'"kind":"event"' in line for line in lines) == 1000
    verify = subprocess.run(secbus_command() + ["audit", "verify", *map(str, files)], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0 and "OK" in verify.stdout, verify.stdout + verify.stderr
