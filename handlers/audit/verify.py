"""``secbus audit verify``: prove an audit chain intact, or name where it breaks.

Checks, record by record, in the order the files are given (a shell glob of
``audit-*.jsonl`` gives chain order; a directory argument expands to its
audit files in chain order):

* each line is a JSON object whose ``hash`` matches its canonical
  serialisation (a *modified* record fails here);
* its ``prev`` is the ``hash`` of the record before it and its ``n`` is one
  more (a *deleted*, *inserted* or *reordered* record fails here);
* every file starts with its ``file`` record, file indexes follow each other,
  and the first file of the chain (index 1) starts from 64 zeros;
* event ``seq`` values increase; checkpoints state the true event count and
  head hash, and carry a valid Ed25519 signature when a public key is given;
* completeness, beside integrity: the log's offsets are consecutive, so a
  ``seq`` skipped between two event records (or before the first one of a
  chain checked from its start) is an event the broker committed and the
  trail does not hold (the handler was off or set to ``drop`` meanwhile).
  Reported with the OK line; ``--complete`` makes it a failure;
* ``audit.head`` beside the last file: the chain must reach its record ``n``
  with the same hash (records *cut off the end*, or a last file deleted,
  fail here).  Without a head file a truncated end cannot be told apart from
  a shorter log: the report says so.

It stops at the first problem and names it as ``FILE:LINE``, because every
record after a break is unproven anyway.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from . import chain
from .signing import KeyFileError, Verifier
from .writer import FILE_RE, HEAD_NAME, audit_files


@dataclass
class Report:
    ok: bool = True
    problem: str | None = None      # "FILE:LINE: message" of the first problem
    records: int = 0
    events: int = 0
    checkpoints: int = 0
    signed: int = 0
    files: int = 0
    notes: list[str] = field(default_factory=list)
    first_seq: int | None = None
    last_seq: int | None = None
    #: (first, last) event seqs the trail skips; (1, k) when a chain checked from its start begins at k + 1
    missing: list[tuple[int, int]] = field(default_factory=list)

    def missing_count(self) -> int:
        return sum(last - first + 1 for first, last in self.missing)


class _Broken(Exception):
    pass


def expand(paths: Sequence[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out.extend(audit_files(p) if p.is_dir() else [p])
    return out


def verify_files(paths: Sequence[str | Path], verifier: Verifier | None = None,
                 head_path: Path | None = None, use_head: bool = True) -> Report:
    files = expand(paths)
    report = Report()
    if not files:
        report.ok, report.problem = False, "no audit files given"
        return report
    if use_head and head_path is None:
        candidate = files[-1].parent / HEAD_NAME
        head_path = candidate if candidate.exists() else None
    head = None
    if head_path is not None and use_head:
        try:
            head = json.loads(Path(head_path).read_text(encoding="utf-8"))
            if not isinstance(head, dict) or not isinstance(head.get("n"), int) or not isinstance(head.get("head"), str):
                raise ValueError("expected an object with n and head")
        except (OSError, ValueError) as exc:
            report.ok, report.problem = False, f"{head_path}: unreadable head file ({exc})"
            return report
        if verifier is not None and not verifier.check(chain.record_hash(head), head.get("sig")):
            report.ok, report.problem = False, f"{head_path}: head file signature is missing or invalid"
            return report
    state = {"n": None, "prev": None, "index": None, "seq": -1, "events": None, "head_seen": False,
             "first_n": 0}
    last_where = ""
    try:
        for path in files:
            report.files += 1
            last_where = _verify_file(path, state, report, verifier, head)
    except _Broken as exc:
        report.ok, report.problem = False, str(exc)
        return report
    if head is not None:
        if state["n"] is None or head["n"] > state["n"]:
            report.ok = False
            report.problem = (f"{last_where}: truncated: the chain ends at record {state['n']} but {head_path} says it "
                              f"reaches record {head['n']} (in {head.get('file')}); records were cut off or a file deleted")
        elif not state["head_seen"] and head["n"] < state["first_n"]:
            report.notes.append(f"{head_path} points at record {head['n']}, before the first record checked")
        elif not state["head_seen"]:
            report.ok = False
            report.problem = f"{head_path}: record {head['n']} of the head file was not among the records checked"
    else:
        report.notes.append("no audit.head beside the files: records cut off the end would not be detected")
    if verifier is not None and report.checkpoints and not report.signed:
        report.ok, report.problem = False, "no signed checkpoint found"
    return report


def _fail(path: Path, line: int, message: str) -> _Broken:
    return _Broken(f"{path}:{line}: {message}")


def _verify_file(path: Path, state: dict, report: Report, verifier: Verifier | None, head: dict | None) -> str:
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise _Broken(f"{path}: cannot read ({exc.strerror})") from None
    lineno = 0
    with fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.endswith(b"\n"):
                raise _fail(path, lineno, "incomplete last line (torn write or cut record)")
            try:
                record = json.loads(raw.decode("utf-8"))
            except ValueError as exc:
                raise _fail(path, lineno, f"not a JSON record ({exc})") from None
            if not isinstance(record, dict) or not isinstance(record.get("hash"), str):
                raise _fail(path, lineno, "not an audit record (no hash)")
            _check_record(path, lineno, record, state, report, verifier, head)
    if lineno == 0:
        raise _Broken(f"{path}:1: empty file (its records were deleted)")
    return f"{path}:{lineno}"


def _check_record(path: Path, lineno: int, record: dict, state: dict, report: Report,
                  verifier: Verifier | None, head: dict | None) -> None:
    if chain.record_hash(record) != record["hash"]:
        raise _fail(path, lineno, f"record {record.get('n')} was modified (its hash does not match its content)")
    kind, n = record.get("kind"), record.get("n")
    if kind not in chain.KINDS or not isinstance(n, int):
        raise _fail(path, lineno, f"unknown record kind {kind!r} or bad n {n!r}")
    if lineno == 1 and kind != chain.FILE:
        raise _fail(path, lineno, "the file does not start with its file record (records deleted from its start?)")
    if kind == chain.FILE and lineno != 1:
        raise _fail(path, lineno, "a file record in the middle of a file (records inserted?)")
    if state["n"] is None:  # the first record checked
        state["first_n"] = n
        if record.get("index") == 1:
            if record.get("prev") != chain.GENESIS or n != 1:
                raise _fail(path, lineno, "the first record of the chain must be n=1 with prev of 64 zeros")
            state["events"] = 0
        else:
            report.notes.append(f"the chain is checked from record {n} ({path.name}, file index "
                                f"{record.get('index')}): earlier files were not given")
    else:
        if record.get("prev") != state["prev"]:
            raise _fail(path, lineno, f"record {n} does not link to the record before it "
                                      f"(a record was deleted, inserted or moved here)")
        if n != state["n"] + 1:
            raise _fail(path, lineno, f"record number {n} where {state['n'] + 1} was expected "
                                      f"(records deleted, inserted or reordered)")
    if kind == chain.FILE:
        index = record.get("index")
        if state["index"] is not None and index != state["index"] + 1:
            raise _fail(path, lineno, f"file index {index} follows file index {state['index']} (a file is missing or out of order)")
        state["index"] = index
        m = FILE_RE.fullmatch(path.name)
        if record.get("file") != path.name and m:
            report.notes.append(f"{path.name} calls itself {record.get('file')}")
    elif kind == chain.EVENT:
        seq = record.get("seq")
        if not isinstance(seq, int) or seq <= state["seq"]:
            raise _fail(path, lineno, f"event seq {seq!r} does not increase (after {state['seq']})")
        # the first event of a chain checked from record 1 should be seq 1; later ones follow on
        expected = state["seq"] + 1 if state["seq"] >= 0 else (1 if state["events"] == 0 else seq)
        if seq > expected:
            report.missing.append((expected, seq - 1))
        if report.first_seq is None:
            report.first_seq = seq
        report.last_seq = state["seq"] = seq
        report.events += 1
        if state["events"] is not None:
            state["events"] += 1
    elif kind == chain.CHECKPOINT:
        report.checkpoints += 1
        if record.get("head") != state["prev"]:
            raise _fail(path, lineno, "checkpoint head is not the hash of the record before it")
        if state["events"] is not None and record.get("events") != state["events"]:
            raise _fail(path, lineno, f"checkpoint says {record.get('events')} events, the chain holds {state['events']}")
        if verifier is not None:
            if "sig" not in record:
                raise _fail(path, lineno, "checkpoint is not signed (a public key was given)")
            if record.get("key_id") != verifier.key_id or not verifier.check(record["hash"], record["sig"]):
                raise _fail(path, lineno, f"checkpoint signature is invalid for key {verifier.key_id}")
            report.signed += 1
    if head is not None and n == head["n"]:
        if record["hash"] != head["head"]:
            raise _fail(path, lineno, f"record {n} does not have the hash the head file records (rewritten chain?)")
        state["head_seen"] = True
    state["n"], state["prev"] = n, record["hash"]
    report.records += 1


def verify_command(args) -> int:
    """Entry point of ``secbus audit verify FILE... [--public-key FILE]``.

    Exit status: 0 intact, 1 a problem found (printed as FILE:LINE: reason),
    2 the files or the key could not be used at all."""
    verifier = None
    if getattr(args, "public_key", None):
        try:
            verifier = Verifier.from_file(Path(args.public_key))
        except KeyFileError as exc:
            print(f"secbus audit verify: {exc}", file=sys.stderr)
            return 2
    missing = [p for p in args.files if not Path(p).exists()]
    if missing:
        print(f"secbus audit verify: no such file: {missing[0]}", file=sys.stderr)
        return 2
    if not expand(args.files):  # a directory without audit files: a wrong path, not a broken chain
        print(f"secbus audit verify: no audit files (audit-NNNNNN.jsonl) in {', '.join(args.files)}", file=sys.stderr)
        return 2
    report = verify_files(args.files, verifier, use_head=not getattr(args, "no_head", False))
    for note in report.notes:
        print(f"note: {note}")
    if not report.ok:
        print(f"FAILED: {report.problem}")
        return 1
    complete = getattr(args, "complete", False)
    if report.missing and complete:
        print(f"FAILED: {completeness(report)}")
        return 1
    signed = f", {report.signed} signatures valid" if verifier else ""
    print(f"OK: {report.records} records ({report.events} events, {report.checkpoints} checkpoints{signed}) "
          f"in {report.files} file(s); {completeness(report)}")
    return 0


def completeness(report: Report) -> str:
    """What the trail holds of the log's event offsets, and what it skips."""
    if report.first_seq is None:
        return "no events"
    span = f"event seqs {report.first_seq}-{report.last_seq}"
    if not report.missing:
        return span + ", none missing"
    ranges = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in report.missing[:10])
    more = f" and {len(report.missing) - 10} more ranges" if len(report.missing) > 10 else ""
    return (f"{span}, {report.missing_count():,} missing: {ranges}{more} (the chain is intact but does not hold "
            f"these events: the broker committed them while the audit handler was off or set to drop)")


def _arguments(parser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="audit files in chain order (audit/audit-*.jsonl), or the audit directory")
    parser.add_argument("--public-key", metavar="FILE", help="Ed25519 public key (PEM): check checkpoint and head signatures")
    parser.add_argument("--no-head", action="store_true", help="do not compare with audit.head (archived files)")
    parser.add_argument("--complete", action="store_true",
                        help="also fail (exit 1) when the trail skips event seqs the log committed")


def add_parser(subparsers) -> None:
    """Register ``audit verify`` on the ``secbus`` CLI (``secbus.cli.COMMANDS`` convention: ``run``)."""
    audit = subparsers.add_parser("audit", help="audit log tools (docs/audit.md)")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check an audit log's hash chain; exit 1 naming the first bad line")
    _arguments(verify)
    verify.set_defaults(run=verify_command)


def main(argv: list[str] | None = None) -> int:
    """``python -m secbus.handlers.audit.verify FILE... [--public-key FILE] [--no-head]``."""
    import argparse
    parser = argparse.ArgumentParser(prog="secbus audit verify", description="Verify an audit log's hash chain.")
    _arguments(parser)
    return verify_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
