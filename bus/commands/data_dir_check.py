"""What ``secbus config check`` says about the data dir before ``serve`` uses it.

``serve`` creates the data dir (mode 0700) and opens or creates the log in it;
these are the reasons it would stop there, found without creating or writing
anything: a path that is not a directory, a directory this user cannot write
(or cannot create), and an event log SQLite cannot read (damaged, or not a
log).  Notes, not failures: a directory open to other users, and how much
space its file system has left (a nearly full disk should not stop a restart:
the broker runs, refuses what it cannot store, and ``/healthz`` says so).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..health import DISK_FREE_SHARE, size_text
from ..log.sqlite import LogMissing, LogUnusable, SqliteLog


def check_data_dir(path: Path) -> tuple[list[str], list[str], str]:
    """``(problems, notes, free)`` for the data dir at ``path``; ``free`` reads ``78.4 GiB free``."""
    if path.exists() and not path.is_dir():
        return [f"data dir {path} is not a directory"], [], ""
    existing = path if path.exists() else _nearest_existing(path)
    if not os.access(existing, os.W_OK | os.X_OK):
        verb = "is not writable" if existing == path else f"cannot be created: {existing} is not writable"
        return [f"data dir {path} {verb} by this user (uid {os.getuid()})"], [], ""
    problems: list[str] = []
    notes: list[str] = []
    if existing == path:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            notes.append(f"data dir {path} is open to other users (mode {mode:o}); chmod 700 it")
        problems += _log_problems(path)
    fs = os.statvfs(existing)
    free, size = fs.f_bavail * fs.f_frsize, fs.f_blocks * fs.f_frsize
    if size and free < DISK_FREE_SHARE * size:
        notes.append(f"the data dir's file system has {size_text(free)} free of {size_text(size)}: when it fills, "
                     f"publishers are turned away (docs/operations.md, \"When the disk fills\")")
    return problems, notes, f"{size_text(free)} free"


def _nearest_existing(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path("/")


def _log_problems(path: Path) -> list[str]:
    """The log in ``path`` opened read-only, as the stored-data commands do: a damaged one is named."""
    try:
        SqliteLog(path, create=False).close()
    except LogMissing:
        return []  # a new data dir: serve creates the log
    except LogUnusable as exc:
        return [str(exc)]
    return []
