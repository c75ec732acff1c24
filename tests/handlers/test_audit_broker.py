"""The audit handler behind a real broker: every committed event lands in the
hash-chained log once, in log order; `secbus audit verify` proves it intact
and names the line of each kind of tampering; a killed broker resumes the
chain without duplicates; secrets never reach the file."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
# Skip (not fail) on a tree where the broker cannot run handlers yet.
pytest.importorskip("secbus.consumers.runner", reason="the broker's handler runner is not in this tree yet")

from support.broker import secbus_command, start_broker, wait_until
from support.events import make_event


def publish(broker, events: list[dict]) -> None:
    with broker.client() as client:
        for i in range(0, len(events), 10):
            ack = client.publish(events[i:i + 10], seq=i + 1)
            assert ack["accepted"] == len(events[i:i + 10]), ack


def audit_dir(broker) -> Path:
    return broker.data_dir / "audit"


def audit_records(broker) -> list[dict]:
    out = []
    for path in sorted(audit_dir(broker).glob("audit-*.jsonl")):
        out += [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
    return out


def audited_seqs(broker) -> list[int]:
    return [r["seq"] for r in audit_records(broker) if r["kind"] == "event"]


def verify(*paths, public_key=None) -> subprocess.CompletedProcess:
    """``secbus audit verify`` as a user runs it, in its own process."""
    args = secbus_command() + ["audit", "verify", *map(str, paths)]
    if public_key:
        args += ["--public-key", str(public_key)]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """A broker that audited 60 events with small files (so the chain spans several), then stopped."""
    tmp = tmp_path_factory.mktemp("audited")
    broker = start_broker(tmp, config={"handlers": {"audit": {"max_file_mb": 0.01, "checkpoint_every": 10}}},
                          handlers=["audit"])
    try:
        events = [make_event("authn.login", outcome="failure", attrs={"n": i}) for i in range(60)]
        publish(broker, events)
        wait_until(lambda: len(audited_seqs(broker)) == 60, 20, message="60 audited events")
        stored = [e["seq"] for e in broker.events()]
    finally:
        broker.stop()
    return broker, stored


def test_every_committed_event_is_audited_once_in_log_order_and_the_chain_verifies(audited):
    broker, stored = audited
    assert audited_seqs(broker) == stored
    files = sorted(audit_dir(broker).glob("audit-*.jsonl"))
    assert len(files) >= 2, "the small max_file_mb should have rotated"
    result = verify(audit_dir(broker))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: " in result.stdout and "60 events" in result.stdout
    assert "event seqs 1-60, none missing" in result.stdout  # the trail holds every offset the log gave


def _event_line(path: Path, index: int) -> int:
    """1-based line number of the index-th event record of a file."""
    lines = path.read_text().splitlines()
    event_lines = [i for i, line in enumerate(lines, 1) if json.loads(line)["kind"] == "event"]
    return event_lines[index]


def _tamper(kind: str, path: Path) -> int:
    """Apply one kind of tampering to a file; return the line verify must name."""
    lines = path.read_text().splitlines(keepends=True)
    n = _event_line(path, 2)
    if kind == "modify":
        record = json.loads(lines[n - 1])
        record["event"]["outcome"] = "success"
        lines[n - 1] = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
        expect = n
    elif kind == "delete":
        del lines[n - 1]
        expect = n
    elif kind == "insert":
        lines.insert(n, lines[n - 1])
        expect = n + 1
    elif kind == "reorder":
        lines[n - 1], lines[n] = lines[n], lines[n - 1]
        expect = n
    else:
        raise AssertionError(kind)
    path.write_text("".join(lines))
    return expect


@pytest.mark.parametrize("kind", ["modify", "delete", "insert", "reorder"])
def test_verify_names_the_first_tampered_line_and_exits_non_zero(audited, tmp_path, kind):
    broker, _ = audited
    copy = tmp_path / "audit"
    shutil.copytree(audit_dir(broker), copy)
    target = sorted(copy.glob("audit-*.jsonl"))[1]
    line = _tamper(kind, target)
    result = verify(copy)
    assert result.returncode == 1, result.stdout
    assert f"{target}:{line}:" in result.stdout


def test_verify_detects_records_cut_off_the_end_and_a_deleted_last_file(audited, tmp_path):
    broker, _ = audited
    copy = tmp_path / "audit"
    shutil.copytree(audit_dir(broker), copy)
    files = sorted(copy.glob("audit-*.jsonl"))
    last = files[-1]
    lines = last.read_text().splitlines(keepends=True)
    last.write_text("".join(lines[:-3]))
    result = verify(copy)
    assert result.returncode == 1 and "truncated" in result.stdout
    last.unlink()
    result = verify(copy)
    assert result.returncode == 1 and "truncated" in result.stdout


def test_a_killed_broker_resumes_the_chain_without_duplicates(tmp_path):
    broker = start_broker(tmp_path, handlers=["audit"])
    try:
        publish(broker, [make_event("authz.check") for _ in range(30)])
        wait_until(lambda: len(audited_seqs(broker)) == 30, 20, message="30 audited events")
        broker.kill()
        broker.start().wait_ready()
        publish(broker, [make_event("authz.check") for _ in range(20)])
        wait_until(lambda: len(audited_seqs(broker)) >= 50, 20, message="50 audited events")
        stored = [e["seq"] for e in broker.events()]
        wait_until(lambda: audited_seqs(broker) == stored, 10, message="audit matches the log")
    finally:
        broker.stop()
    assert verify(audit_dir(broker)).returncode == 0


def test_secret_attrs_never_reach_the_audit_file(tmp_path):
    broker = start_broker(tmp_path, handlers=["audit"])
    try:
        publish(broker, [make_event("authn.login", attrs={"password": "hunter2", "api_token": "tok-XYZ",
                                                          "method": "password"})])
        wait_until(lambda: len(audited_seqs(broker)) == 1, 20, message="1 audited event")
    finally:
        broker.stop()
    text = "".join(p.read_text() for p in audit_dir(broker).glob("audit-*.jsonl"))
    assert "hunter2" not in text and "tok-XYZ" not in text
    [record] = [r for r in audit_records(broker) if r["kind"] == "event"]
    assert record["event"]["attrs"] == {"method": "password"}
    assert sorted(record["redacted"]) == ["attrs.api_token", "attrs.password"]


def test_signed_checkpoints_verify_with_the_public_key(tmp_path):
    from secbus.handlers.audit.signing import generate
    generate(tmp_path / "audit.pem", tmp_path / "audit.pub")
    broker = start_broker(tmp_path, config={"handlers": {"audit": {"signing_key": str(tmp_path / "audit.pem"),
                                                                  "checkpoint_every": 5}}}, handlers=["audit"])
    try:
        publish(broker, [make_event("config.change") for _ in range(12)])
        wait_until(lambda: len(audited_seqs(broker)) == 12, 20, message="12 audited events")
    finally:
        broker.stop()
    result = verify(audit_dir(broker), public_key=tmp_path / "audit.pub")
    assert result.returncode == 0, result.stdout
    assert "signatures valid" in result.stdout


def test_a_bad_audit_setting_stops_only_the_audit_handler_with_a_clear_message(tmp_path):
    broker = start_broker(tmp_path, config={"handlers": {"audit": {"fsync": "always"}}}, handlers=["audit", "metrics"])
    try:
        publish(broker, [make_event("authn.login")])
        message = "[handlers.audit] fsync: expected one of 'batch', 'interval', got 'always'"
        wait_until(lambda: message in broker.log_text(), 10, message="the settings error in the broker log")
        status, _ = broker.get("/metrics")
        assert status == 200
    finally:
        broker.stop()


def test_events_with_floats_non_ascii_and_control_characters_are_stored_as_documented_and_verify(tmp_path):
    # The writer has a fast encoder for records without floats and the documented json.dumps for the
    # rest: through the broker, every stored line must still be the documented serialisation.
    tricky = [{"ratio": 0.1, "tiny": 1e-05, "huge": 1.5e+300, "list": [2.5, "x", 7]},
              {"name": "Zo\u00eb \u65e5\u672c \U0001f510", "ctl": "a\tb\nc\x01\x7f", "quote": '"\\/'},
              {"big": 2**64 - 1, "neg": -(2**63), "flag": True, "none": None}]
    broker = start_broker(tmp_path, handlers=["audit"])
    try:
        publish(broker, [make_event("authn.login", attrs=attrs) for attrs in tricky])
        wait_until(lambda: len(audited_seqs(broker)) == 3, 20, message="3 audited events")
    finally:
        broker.stop()
    for path in audit_dir(broker).glob("audit-*.jsonl"):
        for line in path.read_bytes().splitlines():
            record = json.loads(line)
            assert line == json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    stored = [r["event"]["attrs"] for r in audit_records(broker) if r["kind"] == "event"]
    assert stored == tricky
    assert verify(audit_dir(broker)).returncode == 0


def _writer_processes(pid: int) -> list[int]:
    """Children of ``pid`` running the audit writer."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            try:
                if b"secbus.handlers.audit.worker" in Path(f"/proc/{child}/cmdline").read_bytes():
                    out.append(child)
            except OSError:
                pass
    return out


def test_the_writer_runs_in_its_own_process_and_a_killed_one_loses_nothing(tmp_path):
    """worker = true (the default): the chain is written by a child of the consumer process; if it
    dies, the runner retries the batch and a new writer process resumes the chain, skipping what
    was written, so every event is audited exactly once and the chain verifies."""
    import os
    import signal

    broker = start_broker(tmp_path, handlers=["audit"])
    try:
        publish(broker, [make_event("authz.check") for _ in range(30)])
        wait_until(lambda: len(audited_seqs(broker)) == 30, 20, message="30 audited events")
        consumers = broker.healthz()["consumers"]["pid"]
        [writer] = _writer_processes(consumers)
        os.kill(writer, signal.SIGKILL)
        publish(broker, [make_event("authz.check") for _ in range(20)])
        stored = [e["seq"] for e in broker.events()]
        wait_until(lambda: audited_seqs(broker) == stored, 30, message="audit matches the log after the writer died")
        assert writer not in _writer_processes(consumers)
        assert "audit writer process ended" in broker.log_text()
    finally:
        broker.stop()
    assert len(stored) == 50
    assert verify(audit_dir(broker)).returncode == 0


def test_worker_false_writes_in_the_consumer_process_and_a_bad_value_is_refused(tmp_path):
    broker = start_broker(tmp_path / "a", config={"handlers": {"audit": {"worker": False}}}, handlers=["audit"])
    try:
        publish(broker, [make_event("authz.check") for _ in range(10)])
        wait_until(lambda: len(audited_seqs(broker)) == 10, 20, message="10 audited events")
        assert _writer_processes(broker.healthz()["consumers"]["pid"]) == []
    finally:
        broker.stop()
    assert verify(audit_dir(broker)).returncode == 0
    bad = start_broker(tmp_path / "b", config={"handlers": {"audit": {"worker": "yes"}}}, handlers=["audit", "metrics"])
    try:
        message = "[handlers.audit] worker: expected true or false, got 'yes'"
        wait_until(lambda: message in bad.log_text(), 10, message="the settings error in the broker log")
    finally:
        bad.stop()
