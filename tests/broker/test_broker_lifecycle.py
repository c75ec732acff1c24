"""Lifecycle promises: signals, retention bounds, the data dir."""

from __future__ import annotations

import signal
import stat

from support.broker import wait_until
from support.events import make_events


def test_sigint_stops_cleanly_and_every_acked_event_is_there_after_restart(broker_factory):
    b = broker_factory(handlers=[])
    events = make_events(20)
    with b.client() as c:
        c.publish(events)
    b.signal(signal.SIGINT)
    assert b.proc.wait(30) == 0
    assert "secbus: stopped" in b.log_text()
    assert not (b.data_dir / "broker.json").exists()
    b.start().wait_ready()
    assert [e["id"] for e in b.events()] == [e["id"] for e in events]


def test_second_signal_exits_at_once_while_handlers_drain_and_loses_nothing_acked(broker_factory, recorder_installed, recording):
    b = broker_factory(
        config={"handlers": {"shutdown_deadline_s": 120.0, "recorder": {"out": str(recording.path), "sleep_s": 60.0}}},
        handlers=["recorder"],
    )
    events = make_events(10)
    with b.client() as c:
        c.publish(events)
    b.signal(signal.SIGTERM)
    wait_until(lambda: "stopping" in b.log_text(), message="the broker began stopping")
    b.signal(signal.SIGTERM)
    assert b.proc.wait(10) == 1  # did not wait 60 s for the sleeping handler
    assert "second signal" in b.log_text()
    log = b.open_log()
    try:
        assert [e["id"] for e in log.read("events", 0, 100)] == [e["id"] for e in events]
    finally:
        log.close()


def test_retention_deletes_old_events_but_keeps_seq_increasing(broker_factory):
    b = broker_factory(
        config={"log": {"retention_max_age_s": 1, "retention_interval_s": 0.1}, "correlation": {"trace_idle_ms": 50, "expire_interval_ms": 20}},
        handlers=[],
    )
    with b.client() as c:
        c.publish(make_events(10))
    wait_until(lambda: b.healthz()["log"]["streams"]["events"]["first"] == 11, timeout=15, message="old events deleted")
    with b.client() as c:
        c.publish(make_events(1))
    assert [e["seq"] for e in b.events()] == [11]


def test_retention_never_deletes_what_a_block_handler_has_not_handled(broker_factory, recorder_installed, recording):
    b = broker_factory(
        config={
            "log": {"retention_max_age_s": 1, "retention_interval_s": 0.1},
            "correlation": {"trace_idle_ms": 50, "expire_interval_ms": 20},
            "handlers": {"recorder": {"out": str(recording.path), "sleep_s": 2.0, "batch_size": 5}},
        },
        handlers=["recorder"],
    )
    with b.client() as c:
        c.publish(make_events(20))
    wait_until(lambda: set(recording.delivered_seqs()) == set(range(1, 21)), timeout=30, message="all 20 delivered although they aged out meanwhile")
    wait_until(lambda: b.healthz()["log"]["streams"]["events"]["first"] == 21, timeout=15, message="deleted once handled")


def test_data_dir_is_created_private(broker_factory):
    b = broker_factory(handlers=["audit"])
    assert stat.S_IMODE(b.data_dir.stat().st_mode) == 0o700
    files = [p for p in b.data_dir.rglob("*") if p.is_file()]
    assert files, "the broker created no files"
    loose = {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in files if p.stat().st_mode & 0o077}
    assert loose == {}, "files readable by group or others"
    assert f"data dir {b.data_dir.resolve()}" in b.log_text()
