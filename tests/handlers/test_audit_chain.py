"""The audit chain on real files: it verifies, and every kind of tampering is
caught at the right file and line.  (The end-to-end run through a real broker
is in test_audit_broker.py.)"""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from secbus.handlers.audit import chain
from secbus.handlers.audit.redact import Redactor
from secbus.handlers.audit.signing import Signer, Verifier, generate
from secbus.handlers.audit.verify import verify_command, verify_files
from secbus.handlers.audit.writer import HEAD_NAME, AuditWriter, audit_files

from support.events import stored_row

from .events import make_event


def write_log(directory: Path, count: int, **options) -> AuditWriter:
    writer = AuditWriter(directory, checkpoint_every=options.pop("checkpoint_every", 10), **options)
    writer.open()
    for start in range(0, count, 7):  # batches of 7, as a runner would deliver them
        writer.write_events([make_event(seq=i + 1, attrs={"i": i}) for i in range(start, min(start + 7, count))])
    writer.close()
    return writer


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def rewrite(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def line_of_seq(path: Path, seq: int) -> int:
    for i, raw in enumerate(lines_of(path), 1):
        record = json.loads(raw)
        if record.get("kind") == "event" and record["seq"] == seq:
            return i
    raise AssertionError(f"seq {seq} not in {path}")


@pytest.fixture
def log_dir(tmp_path):
    write_log(tmp_path, 40)
    return tmp_path


def test_an_untouched_chain_verifies_with_every_event_once_in_order(log_dir):
    report = verify_files([log_dir])
    assert report.ok, report.problem
    assert report.events == 40
    records = [json.loads(raw) for raw in lines_of(audit_files(log_dir)[0])]
    assert [r["seq"] for r in records if r["kind"] == "event"] == list(range(1, 41))
    assert records[0]["kind"] == "file" and records[0]["prev"] == chain.GENESIS
    assert all(b["prev"] == a["hash"] for a, b in zip(records, records[1:]))


def write_seqs(directory: Path, seqs: list[int], **options) -> None:
    writer = AuditWriter(directory, checkpoint_every=10, **options)
    writer.open()
    writer.write_events([make_event(seq=s) for s in seqs])
    writer.close()


def test_a_complete_trail_says_so_and_a_skipped_range_is_named_intact_or_failed_with_complete(tmp_path, capsys):
    write_seqs(tmp_path, list(range(1, 11)))
    assert verify_command(types.SimpleNamespace(files=[str(tmp_path)], public_key=None)) == 0
    assert "; event seqs 1-10, none missing" in capsys.readouterr().out

    gapped = tmp_path / "gapped"
    write_seqs(gapped, list(range(1, 11)) + list(range(21, 31)) + [33])  # a handler set to drop, for instance
    report = verify_files([gapped])
    assert report.ok and report.missing == [(11, 20), (31, 32)] and report.missing_count() == 12
    assert verify_command(types.SimpleNamespace(files=[str(gapped)], public_key=None)) == 0
    assert "event seqs 1-33, 12 missing: 11-20, 31-32 (the chain is intact" in capsys.readouterr().out
    assert verify_command(types.SimpleNamespace(files=[str(gapped)], public_key=None, complete=True)) == 1
    assert capsys.readouterr().out.startswith("FAILED: event seqs 1-33, 12 missing: 11-20, 31-32")


def test_a_chain_checked_from_its_start_must_begin_at_seq_1_and_a_later_file_need_not(tmp_path):
    write_seqs(tmp_path, list(range(5, 9)))  # the audit handler enabled after four events
    assert verify_files([tmp_path]).missing == [(1, 4)]

    rotated = tmp_path / "rotated"
    writer = AuditWriter(rotated, checkpoint_every=10, max_file_bytes=2000)
    writer.open()
    for seq in range(1, 41):
        writer.write_events([make_event(seq=seq)])
    writer.close()
    files = audit_files(rotated)
    assert len(files) > 2
    later = verify_files(files[1:])
    assert later.ok and later.missing == [] and later.first_seq > 1


def test_the_hash_is_sha256_of_the_documented_canonical_json(log_dir):
    import hashlib
    record = json.loads(lines_of(audit_files(log_dir)[0])[3])
    body = {k: v for k, v in record.items() if k not in ("hash", "sig")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert hashlib.sha256(canonical).hexdigest() == record["hash"]


def test_a_modified_record_is_named_by_file_and_line(log_dir):
    path = audit_files(log_dir)[0]
    lines = lines_of(path)
    n = line_of_seq(path, 12)
    lines[n - 1] = lines[n - 1].replace(b'"outcome":"success"', b'"outcome":"failure"')
    rewrite(path, lines)
    report = verify_files([path])
    assert not report.ok
    assert report.problem.startswith(f"{path}:{n}: ") and "modified" in report.problem


def test_a_deleted_record_is_caught_at_the_line_after_it(log_dir):
    path = audit_files(log_dir)[0]
    lines = lines_of(path)
    n = line_of_seq(path, 20)
    del lines[n - 1]
    rewrite(path, lines)
    report = verify_files([path])
    assert not report.ok and report.problem.startswith(f"{path}:{n}: ") and "link" in report.problem


def test_an_inserted_record_is_caught_even_when_its_own_hash_is_valid(log_dir):
    path = audit_files(log_dir)[0]
    lines = lines_of(path)
    n = line_of_seq(path, 5)
    forged = chain.seal({"kind": "event", "seq": 5, "event": {"type": "authn.login"}}, 99, "f" * 64)
    lines.insert(n, chain.encode_line(forged))
    rewrite(path, lines)
    report = verify_files([path])
    assert not report.ok and report.problem.startswith(f"{path}:{n + 1}: ")


def test_reordered_records_are_caught(log_dir):
    path = audit_files(log_dir)[0]
    lines = lines_of(path)
    a, b = line_of_seq(path, 30), line_of_seq(path, 31)
    lines[a - 1], lines[b - 1] = lines[b - 1], lines[a - 1]
    rewrite(path, lines)
    report = verify_files([path])
    assert not report.ok and report.problem.startswith(f"{path}:{a}: ")


def test_records_cut_off_the_end_are_caught_through_the_head_file(log_dir):
    path = audit_files(log_dir)[0]
    lines = lines_of(path)
    rewrite(path, lines[:-5])
    report = verify_files([path])
    assert not report.ok and "truncated" in report.problem
    assert verify_files([path], use_head=False).ok  # without the head it cannot be told


def test_a_torn_last_line_is_reported_as_incomplete(log_dir):
    path = audit_files(log_dir)[0]
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    report = verify_files([path])
    assert not report.ok and "incomplete" in report.problem


def test_the_chain_continues_across_rotated_files_and_a_deleted_file_is_caught(tmp_path):
    write_log(tmp_path, 60, max_file_bytes=2000)
    files = audit_files(tmp_path)
    assert len(files) >= 3
    assert verify_files(files).ok
    first_of_second = json.loads(lines_of(files[1])[0])
    last_of_first = json.loads(lines_of(files[0])[-1])
    assert first_of_second["kind"] == "file" and first_of_second["prev"] == last_of_first["hash"]
    assert last_of_first["kind"] == "checkpoint"  # each rotated file ends with a checkpoint
    middle = verify_files([files[0]] + files[2:])
    assert not middle.ok and middle.problem.startswith(f"{files[2]}:1: ")
    last_gone = verify_files(files[:-1])
    assert not last_gone.ok and "truncated" in last_gone.problem


def test_time_rotation_starts_a_new_file_with_the_chain_intact(tmp_path):
    now = [1_000 * 10**9]
    writer = AuditWriter(tmp_path, rotate_interval=60, clock=lambda: now[0])
    writer.open()
    writer.write_events([make_event(seq=1)])
    now[0] += 61 * 10**9
    writer.write_events([make_event(seq=2)])
    writer.close()
    assert len(audit_files(tmp_path)) == 2
    assert verify_files([tmp_path]).ok


def test_stored_rows_are_written_as_the_same_lines_as_their_dicts_floats_and_redelivery_included(tmp_path):
    """write_stored (the writer process's path: rows, plain-type hints from the bytes) and
    write_events (dicts) write byte-identical files."""
    events = [make_event(seq=i + 1, attrs=attrs) for i, attrs in enumerate(
        [{"n": 1}, {"ratio": 0.25}, {"name": "\u0107\u00e9"}, {"password": "x", "ok": True}, {"big": 2**63}])]
    rows = [stored_row({k: v for k, v in e.items() if k not in ("seq", "received_ns", "publisher", "tenant")},
                       e["seq"], e["received_ns"], e["publisher"], e["tenant"]) for e in events]
    by_dicts = AuditWriter(tmp_path / "dicts", clock=iter(range(10**9, 10**10, 1000)).__next__)
    by_dicts.open()
    by_dicts.write_events(events[:3])
    by_dicts.write_events(events[1:])
    by_rows = AuditWriter(tmp_path / "rows", clock=iter(range(10**9, 10**10, 1000)).__next__)
    by_rows.open()
    by_rows.write_stored(rows[:3])
    assert by_rows.write_stored(rows[1:]) == 2  # two of these were written already
    by_dicts.close(), by_rows.close()
    assert by_rows.skipped_redelivered == by_dicts.skipped_redelivered == 2
    read = lambda d: b"".join(f.read_bytes() for f in sorted(d.glob("*.jsonl"))).replace(b"/dicts", b"").replace(b"/rows", b"")
    assert read(tmp_path / "dicts") == read(tmp_path / "rows")


def test_redelivered_events_are_not_written_twice_after_a_restart(tmp_path):
    first = AuditWriter(tmp_path)
    first.open()
    first.write_events([make_event(seq=s) for s in (1, 2, 3)])
    first.close()
    second = AuditWriter(tmp_path)
    second.open()
    assert second.write_events([make_event(seq=s) for s in (2, 3, 4, 5)]) == 2
    second.close()
    records = [json.loads(raw) for p in audit_files(tmp_path) for raw in lines_of(p)]
    assert [r["seq"] for r in records if r["kind"] == "event"] == [1, 2, 3, 4, 5]
    assert verify_files([tmp_path]).ok


def test_a_torn_tail_left_by_a_crash_is_cut_and_the_chain_resumes(tmp_path):
    writer = AuditWriter(tmp_path)
    writer.open()
    writer.write_events([make_event(seq=s) for s in (1, 2)])
    writer._fh.write(b'{"kind":"event","seq":3,"ev')  # a crash mid-write: no close
    writer._fh.flush()
    again = AuditWriter(tmp_path)
    again.open()
    again.write_events([make_event(seq=3)])
    again.close()
    assert verify_files([tmp_path]).ok


def test_secret_attrs_are_never_written_and_are_listed_as_redacted(tmp_path):
    writer = AuditWriter(tmp_path)
    writer.open()
    writer.write_events([make_event(seq=1, attrs={"password": "hunter2", "X-Api-Token": "tok-123", "Cookie": "c=1",
                                                 "method": "totp"}, session="s")])
    event = make_event(seq=2, user="alice")
    event["actor"]["session"] = "sess-secret-value"
    writer.write_events([event])
    writer.close()
    text = audit_files(tmp_path)[0].read_text()
    for secret in ("hunter2", "tok-123", "c=1", "sess-secret-value"):
        assert secret not in text
    records = [json.loads(raw) for raw in text.splitlines()]
    first = next(r for r in records if r.get("seq") == 1 and r["kind"] == "event")
    assert first["event"]["attrs"] == {"method": "totp"}
    assert sorted(first["redacted"]) == ["attrs.Cookie", "attrs.X-Api-Token", "attrs.password"]
    second = next(r for r in records if r.get("seq") == 2 and r["kind"] == "event")
    assert second["event"]["actor"]["session"].startswith("sha256:")


def test_the_redaction_word_list_matches_keys_containing_a_word_case_insensitively():
    redactor = Redactor()
    assert redactor.is_secret("api_token") and redactor.is_secret("AUTHORIZATION") and redactor.is_secret("db_passwd")
    assert not redactor.is_secret("user_agent") and not redactor.is_secret("method")


def test_signed_checkpoints_verify_and_a_rewritten_chain_fails_the_signature(tmp_path):
    generate(tmp_path / "audit.key", tmp_path / "audit.pub")
    log = tmp_path / "log"
    write_log(log, 30, signer=Signer.from_file(tmp_path / "audit.key"))
    verifier = Verifier.from_file(tmp_path / "audit.pub")
    report = verify_files([log], verifier)
    assert report.ok and report.signed >= 3
    # An attacker rewrites record contents and recomputes every hash after it,
    # but cannot re-sign: the first checkpoint after the change fails.
    path = audit_files(log)[0]
    records = [json.loads(raw) for raw in lines_of(path)]
    records[2]["event"]["outcome"] = "failure"
    prev = records[1]["hash"]
    for record in records[2:]:
        record.pop("hash")
        if record["kind"] == "checkpoint":
            record["head"] = prev
        chain.seal(record, record["n"], prev)
        prev = record["hash"]
    rewrite(path, [chain.encode_line(r) for r in records])
    assert verify_files([path], use_head=False).ok  # unsigned, the rewrite is internally consistent
    report = verify_files([path], verifier, use_head=False)
    assert not report.ok and "signature is invalid" in report.problem


def test_verify_command_exits_non_zero_naming_the_first_bad_line(log_dir, capsys):
    path = audit_files(log_dir)[0]
    assert verify_command(types.SimpleNamespace(files=[str(path)], public_key=None)) == 0
    lines = lines_of(path)
    lines[4] = lines[4].replace(b'"seq":', b'"seq": ')
    lines[4] = lines[4].replace(b'"i":', b'"j":')
    rewrite(path, lines)
    assert verify_command(types.SimpleNamespace(files=[str(path)], public_key=None)) == 1
    assert f"{path}:5:" in capsys.readouterr().out


def test_verify_command_rejects_a_missing_file_and_a_bad_key_with_exit_2(log_dir, capsys, tmp_path):
    assert verify_command(types.SimpleNamespace(files=[str(tmp_path / "nope.jsonl")], public_key=None)) == 2
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key")
    assert verify_command(types.SimpleNamespace(files=[str(log_dir)], public_key=str(bad))) == 2
    assert "bad.pub" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()  # a directory without audit files: a wrong path, not tampering (1)
    assert verify_command(types.SimpleNamespace(files=[str(tmp_path / "empty")], public_key=None)) == 2
    assert "no audit files (audit-NNNNNN.jsonl) in" in capsys.readouterr().err


def test_the_single_pass_line_equals_the_documented_serialisation_even_with_tricky_keys():
    tricky = make_event(seq=7, attrs={"kind": "x", "hash": 'a","kind":1', "zz": "\u00e9\u2028", "n": [1, "b"]})
    for record in ({"kind": "event", "seq": 7, "event": tricky, "events": 3, "redacted": ["attrs.kind"]},
                   {"kind": "file", "file": "audit-000001.jsonl", "index": 1, "time": 5, "seq": -1, "events": 0},
                   {"kind": "checkpoint", "head": "ab" * 32, "time": 9, "seq": 7, "events": 3}):
        fast = chain.seal_line(dict(record), 5, "cd" * 32)
        slow = chain.encode_line(chain.seal(dict(record), 5, "cd" * 32))
        assert fast == slow


def test_interval_fsync_keeps_the_head_behind_until_the_interval_passes_and_close_catches_up(tmp_path):
    now = [1_000 * 10**9]
    writer = AuditWriter(tmp_path, fsync="interval", fsync_interval=5, clock=lambda: now[0])
    writer.open()
    writer.write_events([make_event(seq=1)])
    head = json.loads((tmp_path / HEAD_NAME).read_text())
    assert head["seq"] == -1  # written to the OS, not yet fsynced: the head still names the file record
    assert b'"seq":1' in audit_files(tmp_path)[0].read_bytes()
    now[0] += 6 * 10**9
    writer.write_events([make_event(seq=2)])
    assert json.loads((tmp_path / HEAD_NAME).read_text())["seq"] == 2
    writer.write_events([make_event(seq=3)])
    writer.close()
    assert json.loads((tmp_path / HEAD_NAME).read_text())["seq"] == 3
    assert verify_files([tmp_path]).ok


def test_a_checkpoint_is_written_when_the_checkpoint_interval_passes(tmp_path):
    now = [1_000 * 10**9]
    writer = AuditWriter(tmp_path, checkpoint_every=1000, checkpoint_interval=60, clock=lambda: now[0])
    writer.open()
    writer.write_events([make_event(seq=1)])
    now[0] += 61 * 10**9
    writer.write_events([make_event(seq=2)])
    kinds = [json.loads(line)["kind"] for line in lines_of(audit_files(tmp_path)[0])]
    assert kinds == ["file", "event", "event", "checkpoint"]
    writer.close()


def test_a_corrupt_last_record_stops_the_writer_with_advice_instead_of_extending_a_broken_chain(tmp_path):
    write_log(tmp_path, 5)
    path = audit_files(tmp_path)[0]
    lines = lines_of(path)
    lines[-1] = b"{not json}\n"
    rewrite(path, lines)
    with pytest.raises(ValueError, match="secbus audit verify"):
        AuditWriter(tmp_path).open()


def test_a_chain_cut_while_stopped_is_not_extended_so_the_evidence_stays(tmp_path):
    write_log(tmp_path, 20)
    path = audit_files(tmp_path)[0]
    rewrite(path, lines_of(path)[:-4])
    with pytest.raises(ValueError, match="says the chain reaches record .* but the audit files end at record"):
        AuditWriter(tmp_path).open()
    assert "truncated" in verify_files([tmp_path]).problem  # the head still tells
    (tmp_path / HEAD_NAME).rename(tmp_path / "audit.head.evidence")
    resumed = AuditWriter(tmp_path)
    resumed.open()  # the operator moved the head aside: a new head starts
    resumed.close()
