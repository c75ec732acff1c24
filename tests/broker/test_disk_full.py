"""The log's file system full: the broker keeps serving, ACKs nothing it has not stored, says
so in /healthz and ``secbus status``, and takes every held event once space is back.

A full disk is made with the kernel's file-size limit (``RLIMIT_FSIZE``, set on the running
broker's processes with ``prlimit``; no root, no loop device): a write past the limit fails
with EFBIG, which SQLite reports as an I/O error, where ENOSPC would give "database or disk is
full". Both reach the broker as a failing commit. Python ignores SIGXFSZ, so the processes get
the error rather than a signal. Only the soft limit is lowered, so the test can lift it again.
"""

from __future__ import annotations

import json
import os
import re
import resource
import sqlite3
import subprocess

import pytest

from secbus.testing import secbus_command
from support.broker import run_secbus, wait_until
from support.events import make_event, make_events

pytestmark = pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="prlimit is Linux only")

#: The first WAL frame of events.db ends past this (32-byte header + 24-byte frame header + a
#: 16 KiB page): every commit of events fails, however few.
FULL = 16 * 1024


def broker_pids(root: int) -> list[int]:
    """The broker's process and every process below it (consumers, correlator, audit writer)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # exited meanwhile
    found, frontier = [root], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found.extend(children)
        frontier = children
    return found


def consumer_pids(broker) -> list[int]:
    """Every broker process but ingest: the consumer process and its children."""
    return broker_pids(broker.proc.pid)[1:]


def limit_writes(pids: list[int], limit: int) -> None:
    for pid in pids:
        try:
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        except ProcessLookupError:
            pass


def wait_for_no_problems(broker, why: str) -> None:
    wait_until(lambda: broker.healthz()["problems"] == [], timeout=15,
               message=lambda: f"no problems ({why}); still: {broker.healthz()['problems']}")


def commit_writes(broker) -> dict:
    return broker.healthz()["log"]["writes"]["commit"]


def test_a_full_disk_refuses_batches_with_overloaded_and_a_resent_batch_is_then_stored_once(broker):
    client = broker.client()
    client.publish(make_events(10), seq=1)
    limit_writes([broker.proc.pid], FULL)  # the ingest process: the only writer of events.db

    held = make_events(100)
    command, reply = client.request(b"PUB", {"seq": 2, "events": held})
    assert command == b"ERR" and reply["code"] == "overloaded" and reply["retry_after_ms"] > 0
    assert reply["message"] == "log: commit failed (disk I/O error); retry"
    assert client.ping()["version"] == 1  # still serving

    doc = broker.healthz()
    assert doc["log"]["writes"]["commit"]["failures"] >= 1
    assert doc["log"]["writes"]["commit"]["last_error"] == "OperationalError: disk I/O error"
    assert doc["rejects"]["overloaded"] >= 1 and doc["ingest"]["events_accepted"] == 10
    assert [p for p in doc["problems"] if p.startswith("event log: commits failing since")]
    out = run_secbus("status", "--http", broker.http)
    assert out.returncode == 1 and "event log: commits failing since" in out.stdout
    assert "publishers get 'overloaded' and keep their events" in out.stdout
    assert broker.get("/healthz?strict")[0] == 503
    metrics = broker.get("/metrics")[1]
    assert re.search(r'^secbus_log_writes_failing\{operation="commit",[^}]*\} 1\.0$', metrics, re.M)
    assert re.search(r'^secbus_log_write_failures_total\{operation="commit",[^}]*\} [1-9]', metrics, re.M)
    assert {"commit", "checkpoint", "retention"} == set(re.findall(r'^secbus_log_writes_failing\{operation="(\w+)"', metrics, re.M))
    assert "event log: commit failed: OperationalError: disk I/O error" in broker.log_text()

    limit_writes([broker.proc.pid], resource.RLIM_INFINITY)
    ack = client.publish(held, seq=3)  # what a publisher does after retry_after_ms
    assert (ack["accepted"], ack["duplicate"], ack["rejected"]) == (100, 0, [])
    assert broker.healthz()["log"]["writes"]["commit"]["failing_since_ns"] is None
    wait_for_no_problems(broker, "a checkpoint that failed is tried again every second")
    assert any("commits failed and later ones worked" in note for note in json.loads(
        run_secbus("status", "--http", broker.http, "--json").stdout)["notes"])

    broker.stop()
    with sqlite3.connect(broker.data_dir / "events.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        ids = [row[0] for row in db.execute("SELECT id FROM events ORDER BY seq")]
    assert len(ids) == 110 and ids[10:] == [e["id"] for e in held]


def test_a_full_disk_under_every_broker_process_loses_nothing_the_sdk_emitted(broker_factory):
    broker = broker_factory(handlers=["audit"])
    client = broker.sdk_client("disk-full")
    client.emit("authn.login", "success")
    assert client.flush(10)
    pids = broker_pids(broker.proc.pid)
    assert len(pids) >= 3  # ingest, consumers, audit writer (at least)
    limit_writes(pids, FULL)

    emitted = [client.emit("authn.login", "failure", actor={"user": f"u{i}"}) for i in range(2000)]
    wait_until(lambda: commit_writes(broker)["failures"] >= 2, message="commits failing, the SDK retrying")
    assert client.emit("authz.check", "success")  # the application never notices
    assert client.stats()["acked"] == 1

    limit_writes(broker_pids(broker.proc.pid), resource.RLIM_INFINITY)
    assert client.flush(30)
    wait_until(lambda: broker.healthz()["handlers"]["audit"]["lag"]["events"] == 0, timeout=30,
               message="the audit handler caught up")
    wait_for_no_problems(broker, "everything caught up")
    stored = [e["id"] for e in broker.events()]
    assert len(stored) == len(set(stored)) == 2002
    assert set(emitted) <= set(stored)
    verify = run_secbus("audit", "verify", "--complete", str(broker.data_dir / "audit"))
    assert verify.returncode == 0, verify.stdout + verify.stderr


@pytest.mark.parametrize("worker", [True, False], ids=["writer-process", "in-handler"])
def test_the_audit_trail_stays_complete_when_its_disk_fills_mid_batch(broker_factory, worker):
    broker = broker_factory(handlers=["audit"], config={"handlers": {"audit": {"worker": worker}}})
    client = broker.client()
    client.publish(make_events(10), seq=1)
    wait_until(lambda: broker.healthz()["handlers"]["audit"]["lag"]["events"] == 0, message="audit caught up")
    trail = broker.data_dir / "audit" / "audit-000001.jsonl"
    consumers = consumer_pids(broker)
    limit_writes(consumers, trail.stat().st_size + 3000)  # room for a few records, then a torn one

    for seq in range(2, 52):  # 5,000 events: more than the writer's 1 MiB buffer holds
        client.publish(make_events(100), seq=seq)
    wait_until(lambda: broker.healthz()["handlers"]["audit"]["failures"] >= 6, message="the audit handler retrying")
    assert broker.healthz()["handlers"]["audit"]["lag"]["events"] > 0

    limit_writes(broker_pids(broker.proc.pid), resource.RLIM_INFINITY)
    wait_until(lambda: broker.healthz()["handlers"]["audit"]["lag"]["events"] == 0, timeout=30,
               message="the audit handler caught up")
    broker.stop()
    verify = run_secbus("audit", "verify", "--complete", str(broker.data_dir / "audit"))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "(5010 events" in verify.stdout and "event seqs 1-5010, none missing" in verify.stdout, verify.stdout


def test_traces_closed_while_the_disk_is_full_are_stored_once_it_is_not(broker_factory):
    broker = broker_factory(handlers=[], config={"correlation": {"trace_idle_ms": 200, "expire_interval_ms": 50}})
    correlator = wait_until(lambda: broker.healthz()["correlator"].get("process", {}).get("pid"), message="the correlator process")
    limit_writes([correlator], 1)  # its only file writes: closed traces and its cursor in state.db
    events = make_events(50)  # 50 traces of one event each
    broker.client().publish(events)
    wait_until(lambda: broker.healthz()["correlator"]["failures"] >= 2, message="the correlator failing to store traces")
    assert broker.traces() == []

    limit_writes([correlator], resource.RLIM_INFINITY)
    wait_until(lambda: len(broker.traces()) >= 50, timeout=20, message="the traces stored")
    traces = broker.traces()
    assert sorted(t["trace_id"] for t in traces) == sorted(e["trace_id"] for e in events)
    assert broker.healthz()["correlator"]["process"]["restarts"] == 0  # kept, not replayed by a restart


def test_a_handler_whose_cursor_cannot_be_stored_is_not_failing_and_says_so_once(broker_factory):
    broker = broker_factory(handlers=["metrics"])  # writes no file of its own: only its cursor
    consumers = consumer_pids(broker)
    limit_writes(consumers, 1)  # state.db (cursors, traces) cannot be written
    client = broker.client()
    for seq in range(1, 6):
        client.publish(make_events(20), seq=seq)
    wait_until(lambda: broker.healthz()["handlers"]["metrics"]["log_errors"] >= 3, message="cursor stores failing")
    metrics = broker.healthz()["handlers"]["metrics"]
    assert (metrics["state"], metrics["failures"], metrics["lag"]["events"]) == ("running", 0, 0)
    # (what the consumer process logs meanwhile is lost too: broker.log is a file under the same limit)

    limit_writes(consumers, resource.RLIM_INFINITY)
    wait_until(lambda: "handler metrics: storing its cursor works again" in broker.log_text(), message="the cursor stored")
    broker.stop()
    assert broker.log_text().count("storing its cursor") == 1  # no line per retry once it works
    log = broker.open_log()
    try:
        assert log.get_cursor("metrics", "events") == 100
    finally:
        log.close()


def test_serve_on_a_full_disk_says_so_instead_of_calling_the_log_damaged(tmp_path):
    def serve_with_room(limit: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            secbus_command() + ["serve", "--data-dir", str(tmp_path / "data"), "--ingest", "tcp://127.0.0.1:0",
                                "--feed", "tcp://127.0.0.1:0", "--http", "127.0.0.1:0"],
            capture_output=True, text=True, timeout=60,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY)))

    r = serve_with_room(1)  # not even the lock file's pid line
    assert r.returncode == 2, r.stdout + r.stderr
    assert "File too large writing in" in r.stderr and "is the file system full, read-only or failing?" in r.stderr

    r = serve_with_room(64)  # room for the lock: now the log's first write fails
    assert r.returncode == 2, r.stdout + r.stderr
    assert "cannot be used: disk I/O error; is the file system full or failing?" in r.stderr
    assert "damaged" not in r.stderr


def test_alerts_raised_while_the_disk_is_full_are_stored_once_it_is_not(broker_factory):
    broker = broker_factory(handlers=["alerting"])
    consumers = consumer_pids(broker)
    limit_writes(consumers, 1)  # the alerts stream, cursors and alerting's own state cannot be written
    users = [f"user{i}" for i in range(10)]
    broker.client().publish([make_event("authn.login", outcome="failure", actor={"user": u, "ip": "203.0.113.7"})
                             for _ in range(5) for u in users])  # 5 failed logins each: one brute-force alert each
    wait_until(lambda: broker.healthz()["handlers"]["alerting"]["failures"] >= 2, message="alerting failing to publish")
    assert "disk I/O error" in broker.healthz()["handlers"]["alerting"]["last_error"]
    assert broker.alerts() == []

    limit_writes(consumers, resource.RLIM_INFINITY)
    sentinel = make_event("security.attack.detected", outcome="failure", severity="critical", actor={"ip": "198.18.0.1"})
    broker.client().publish([sentinel], seq=2)  # alerting works in log order: its alert comes after the others
    wait_until(lambda: any(sentinel["id"] in a.get("event_ids", []) for a in broker.alerts()), timeout=30,
               message="the sentinel's alert")
    brute = [a for a in broker.alerts() if a["rule"] == "authn-brute-force"]
    assert sorted(a["group"] for a in brute) == sorted(f"tenant=default,actor.user={u}" for u in users)
