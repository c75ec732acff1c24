"""Child processes of the broker and the pipes to them.

A child is a fresh interpreter (``python -m <module> <read fd> <write fd>``), not a
fork: the processes that start them have threads, so a fork could inherit a lock
another thread held.  The two pipes are made wide enough for one message in one
write: through Linux's default 64 KiB pipe a batch of a thousand events (or a
commit's closed traces) went in a dozen blocking writes, and each let the sending
process's interpreter lock go; in a busy process getting it back is what kept the
other side waiting between messages (benchmarks/FINDINGS.md 7).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from multiprocessing.connection import Connection

log = logging.getLogger("secbus.pipes")

PIPE_BYTES = 1 << 20  # Linux's default /proc/sys/fs/pipe-max-size


def widen_pipe(fd: int) -> None:
    """Give the pipe of ``fd`` ``PIPE_BYTES`` of room (Linux; elsewhere it stays as it is).
    One pipe object per direction: widening one end widens both."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError) as exc:  # not Linux, or over pipe-max-size
        log.debug("pipe stays at its default size: %s", exc)


def start_child(module: str) -> tuple[subprocess.Popen, Connection, Connection]:
    """Start ``python -m module <read fd> <write fd>``; returns it and our (reader, writer)."""
    ours_read, theirs_write = os.pipe()
    theirs_read, ours_write = os.pipe()
    widen_pipe(ours_read)
    widen_pipe(theirs_read)
    try:
        process = subprocess.Popen([sys.executable, "-m", module, str(theirs_read), str(theirs_write)],
                                   pass_fds=(theirs_read, theirs_write), stdin=subprocess.DEVNULL)
    finally:
        os.close(theirs_read)
        os.close(theirs_write)
    return process, Connection(ours_read, writable=False), Connection(ours_write, readable=False)


def end_child(process: subprocess.Popen | None, *conns: Connection | None, wait_s: float = 5.0) -> None:
    """Close our ends (the child exits when its pipe closes), wait for it, kill it if it will not go."""
    for conn in conns:
        if conn is not None:
            conn.close()
    if process is not None:
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
