"""``secbus backup DEST``: a consistent copy of a data dir, taken while the broker runs.

Copying the files of a running broker can tear a database (SQLite's WAL holds
commits not yet in the main file) or an audit line being written.  So:

* every SQLite database is copied with SQLite's online backup API (one read
  snapshot each; ingest and handlers keep writing meanwhile);
* in an order that keeps references valid: the broker's ``state.db`` (cursors,
  traces, alerts) first, handler databases next, ``events.db`` last, so the copy
  holds every event a cursor, trace or alert points to (a handler's own state may
  be ahead of its cursor in the copy, as after a crash: handlers are built for
  that, delivery is at least once);
* other small files as they are, before any append-only file: ``audit.head`` is
  rewritten only after the records it names are on disk, so a head copied first
  never names records the copy lacks;
* append-only files (``*.jsonl``: the audit chain, ``alert-file``) last, each
  up to its last complete line, so ``secbus audit verify`` passes on the copy;
* the lock, the runtime file, WAL/SHM files and temporary files (``*.tmp``: the
  audit head being rewritten) are left out, and so is a file that vanished
  between listing and copying (a rename-into-place finished meanwhile);
* every copied file and directory is fsynced before the command says it is done;
* a copy that fails part way (a full disk) is removed, so an incomplete copy is
  never mistaken for a backup; the error names the file.

Restore: stop the broker, put the copy in place of the data dir, start it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
from pathlib import Path

from . import Usage
from .stored import add_data_dir, data_dir_of

_SKIP = {"broker.lock", "broker.json"}
_SKIP_SUFFIXES = ("-wal", "-shm", "-journal", ".tmp")
_CHUNK = 1 << 20


def add_parser(sub) -> None:
    p = sub.add_parser("backup", help="copy the data dir consistently, while the broker runs")
    p.add_argument("dest", help="a new (or empty) directory for the copy")
    add_data_dir(p)
    p.set_defaults(run=run)


def run(args) -> int:
    source = Path(data_dir_of(args))
    dest = Path(args.dest)
    if not (source / "events.db").is_file():
        raise Usage(f"no event log in {source} (events.db is missing)")
    if dest.resolve().is_relative_to(source.resolve()):
        raise Usage(f"{dest} is inside the data dir {source}; put the copy elsewhere")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise Usage(f"{dest} exists and is not an empty directory; give a new one")
    if not _is_sqlite(source / "events.db"):
        raise Usage(f"{source / 'events.db'} is not an SQLite database: nothing consistent to copy")
    created = not dest.exists()
    old_umask = os.umask(0o077)  # the copy holds what the data dir holds: owner only
    doing = f"creating {dest}"
    try:
        dest.mkdir(mode=0o700, parents=True, exist_ok=True)
        databases, others = _inventory(source)
        for path in databases:
            doing = f"copying {path} to {dest}"
            _backup_database(path, dest / path.relative_to(source))
        for path in list(others):
            doing = f"copying {path} to {dest}"
            try:
                _copy_file(path, dest / path.relative_to(source))
            except FileNotFoundError as exc:
                if str(exc.filename) != str(path):
                    raise
                others.remove(path)  # gone since the listing: a temporary file, not data
        doing = f"syncing {dest} to disk"
        _sync_tree(dest)
    except (OSError, sqlite3.Error) as exc:
        _remove_copy(dest, created)
        print(f"secbus backup: {doing} failed: {exc}; the incomplete copy was removed", file=sys.stderr)
        return 1
    finally:
        os.umask(old_umask)
    head = _events_head(dest / "events.db")
    print(f"secbus backup: {len(databases)} database(s) and {len(others)} file(s) from {source} to {dest}; "
          f"events up to seq {head}")
    return 0


def _sync_tree(dest: Path) -> None:
    """fsync every file, then every directory (deepest first), so the copy survives a power loss."""
    paths = sorted(dest.rglob("*"), key=lambda p: len(p.parts), reverse=True) + [dest]
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_copy(dest: Path, created: bool) -> None:
    """Remove what this backup wrote: DEST itself if it made it, else what is in it (it was empty)."""
    if created:
        shutil.rmtree(dest, ignore_errors=True)
    else:
        for child in dest.iterdir():
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)


def _inventory(source: Path) -> tuple[list[Path], list[Path]]:
    """The databases in backup order (state.db, handlers', events.db) and the other files."""
    databases, others = [], []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        if path.name in _SKIP or path.name.endswith(_SKIP_SUFFIXES):
            continue
        (databases if _is_sqlite(path) else others).append(path)
    rank = {source / "state.db": 0, source / "events.db": 2}
    databases.sort(key=lambda p: rank.get(p, 1))
    others.sort(key=lambda p: (p.suffix == ".jsonl", p))  # heads before the chains they describe
    return databases, others


def _is_sqlite(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(16) == b"SQLite format 3\x00"


def _backup_database(path: Path, target: Path) -> None:
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    src = sqlite3.connect(path)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # one read snapshot: consistent while the broker writes
        finally:
            dst.close()
    finally:
        src.close()


def _copy_file(path: Path, target: Path) -> None:
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.suffix != ".jsonl":
        shutil.copyfile(path, target)
        return
    with open(path, "rb") as src, open(target, "wb") as dst:
        size = os.fstat(src.fileno()).st_size  # lines appended after this are not in the copy
        copied, pending = 0, b""
        while copied < size:
            chunk = src.read(min(_CHUNK, size - copied))
            if not chunk:
                break
            copied += len(chunk)
            data = pending + chunk
            cut = data.rfind(b"\n") + 1
            dst.write(data[:cut])
            pending = data[cut:]
        # ``pending`` is a line still being written: left out


def _events_head(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        row = db.execute("SELECT max(seq) FROM events").fetchone()
    finally:
        db.close()
    return row[0] or 0
