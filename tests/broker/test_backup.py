"""``secbus backup``: a consistent copy of a running broker's data dir that a broker starts on."""

from __future__ import annotations

import argparse
import resource
import stat
import subprocess
import threading

from secbus.testing import secbus_command
from support.broker import BrokerProcess, run_secbus, start_broker, wait_until
from support.events import make_event

HANDLERS = ["audit", "alerting"]


def test_a_backup_taken_under_load_is_consistent_and_a_broker_resumes_on_it(tmp_path):
    broker = start_broker(tmp_path / "live", handlers=HANDLERS)
    stop = threading.Event()

    def publish_until_stopped() -> None:
        with broker.client() as client:
            seq = 0
            while not stop.is_set():
                seq += 1
                client.publish([make_event("authn.login", outcome="failure", actor={"user": f"u{seq % 7}"})
                                for _ in range(20)], seq=seq)

    publisher = threading.Thread(target=publish_until_stopped)
    try:
        with broker.client() as client:
            client.publish([make_event("authn.login") for _ in range(50)])
        wait_until(lambda: (broker.data_dir / "audit" / "audit.head").exists(), 20, message="the audit head")
        publisher.start()
        copy = tmp_path / "restored" / "data"  # where BrokerProcess(tmp_path / "restored") keeps its data
        r = run_secbus("backup", str(copy), "--data-dir", str(broker.data_dir))
        stop.set()
        publisher.join(30)
        assert r.returncode == 0, r.stderr
        assert "events up to seq" in r.stdout
    finally:
        stop.set()
        broker.stop()
    assert stat.S_IMODE(copy.stat().st_mode) == 0o700
    names = {p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file()}
    assert {"events.db", "state.db", "alerting/state.db", "audit/audit.head"} <= names
    assert not {n for n in names if n.endswith(("-wal", "-shm")) or n in ("broker.lock", "broker.json")}

    audit_files = sorted(str(p) for p in (copy / "audit").glob("*.jsonl"))
    verify = run_secbus("audit", "verify", *audit_files)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    original = {e["seq"]: e["id"] for e in broker.events()}
    restored = BrokerProcess(tmp_path / "restored", handlers=HANDLERS)
    assert restored.data_dir == copy
    restored.start()
    try:
        restored.wait_ready(20)
        stored = {e["seq"]: e["id"] for e in restored.events()}
        assert stored and list(stored) == list(range(1, max(stored) + 1))  # no hole
        assert all(original[seq] == event_id for seq, event_id in stored.items())  # the live log's prefix
        with restored.client() as client:
            assert client.publish([make_event("authz.check")])["accepted"] == 1
        wait_until(lambda: restored.healthz()["handlers"]["audit"]["lag"]["events"] == 0, 30, message="audit caught up")
    finally:
        restored.stop()
    verify = run_secbus("audit", "verify", *sorted(str(p) for p in (copy / "audit").glob("*.jsonl")))
    assert verify.returncode == 0, verify.stdout + verify.stderr  # the chain went on from the copy


def test_backup_refuses_a_dir_without_a_log_a_used_or_inner_destination_and_a_damaged_log(tmp_path):
    data, dest = tmp_path / "data", tmp_path / "dest"
    data.mkdir()
    dest.mkdir()
    (dest / "x").write_text("keep me")

    def backup(target) -> str:
        r = run_secbus("backup", str(target), "--data-dir", str(data))
        assert r.returncode == 2
        return r.stderr

    assert "no event log in" in backup(tmp_path / "new")
    (data / "events.db").write_bytes(b"")
    assert "exists and is not an empty directory" in backup(dest)
    assert (dest / "x").read_text() == "keep me"
    assert "is inside the data dir" in backup(data / "backups" / "today")
    assert "events.db is not an SQLite database" in backup(tmp_path / "new")


def test_a_backup_that_fills_its_disk_says_which_file_and_leaves_no_partial_copy(tmp_path):
    broker = start_broker(tmp_path / "live", handlers=["audit"])
    with broker.client() as client:
        for seq in range(1, 11):
            client.publish([make_event("authn.login") for _ in range(100)], seq=seq)
    broker.stop()

    def full_at_64k() -> None:  # in the child: its file writes fail past 64 KiB (EFBIG; Python ignores SIGXFSZ)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))

    for dest, existed in ((tmp_path / "new-dir", False), (tmp_path / "empty-dir", True)):
        if existed:
            dest.mkdir()
        r = subprocess.run(secbus_command() + ["backup", str(dest), "--data-dir", str(broker.data_dir)],
                           capture_output=True, text=True, timeout=60, preexec_fn=full_at_64k)
        assert r.returncode == 1, r.stdout + r.stderr
        assert f"to {dest} failed: disk I/O error; the incomplete copy was removed" in r.stderr
        assert str(broker.data_dir) in r.stderr  # the file it was copying
        assert dest.exists() == existed and (not existed or not any(dest.iterdir()))
    r = run_secbus("backup", str(tmp_path / "new-dir"), "--data-dir", str(broker.data_dir))
    assert r.returncode == 0 and "events up to seq 1000" in r.stdout, r.stderr


def test_temporary_files_are_left_out_and_a_file_gone_since_the_listing_is_skipped(tmp_path, monkeypatch):
    broker = start_broker(tmp_path / "live", handlers=["audit"])
    with broker.client() as client:
        client.publish([make_event("authn.login") for _ in range(10)])
    broker.stop()
    audit = broker.data_dir / "audit"
    (audit / "audit.head.tmp").write_text("{}")  # the audit writer's head, caught mid-rewrite
    (audit / "notes.txt").write_text("removed by its owner while the backup runs")

    r = run_secbus("backup", str(tmp_path / "one"), "--data-dir", str(broker.data_dir))
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "one" / "audit" / "audit.head.tmp").exists()

    # The race the live test can hit: a file listed, then gone (renamed into place) before its copy.
    from secbus.commands import backup

    listed = backup._inventory

    def inventory_then_remove(source):
        databases, others = listed(source)
        (audit / "notes.txt").unlink()
        return databases, others

    monkeypatch.setattr(backup, "_inventory", inventory_then_remove)
    args = argparse.Namespace(dest=str(tmp_path / "two"), data_dir=str(broker.data_dir))
    assert backup.run(args) == 0
    assert (tmp_path / "two" / "audit" / "audit.head").exists() and not (tmp_path / "two" / "audit" / "notes.txt").exists()
