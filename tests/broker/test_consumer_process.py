"""The consumer process: handlers live beside ingest, and either side dying is survivable.

The broker runs the correlator, the feed, the handlers and HTTP in a child
process (bus/consumers/process.py). These tests kill one side or the other
with SIGKILL and check the promises: ingest keeps ACKing while consumers are
down, a restarted consumer process delivers every event (at least once), and
a dead broker never leaves its consumer process behind.
"""

from __future__ import annotations

import os
import signal

from secbus_sdk import wire
from support.broker import wait_until
from support.events import make_events

from .test_broker_handlers import publish_batches, recorder_config


def alive(pid: int) -> bool:
    """Running (a zombie nobody has reaped yet counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_handlers_run_in_a_child_process_reported_by_healthz_and_at_start(broker_factory):
    b = broker_factory(handlers=["metrics"])
    consumers = b.healthz()["consumers"]
    assert consumers["pid"] != b.proc.pid and alive(consumers["pid"])
    assert consumers["restarts"] == 0
    assert f"secbus: pid {b.proc.pid} (ingest), {consumers['pid']} (consumers" in b.log_text()


def test_killed_consumer_process_is_restarted_and_every_event_reaches_the_handler(broker_factory, recorder_installed, recording):
    b = broker_factory(config=recorder_config(recording), handlers=["recorder"])
    before = publish_batches(b, 2, 5)
    wait_until(lambda: len(set(recording.delivered_seqs())) == 10, message="first 10 events delivered")
    old = b.healthz()["consumers"]["pid"]
    feed, http = b.healthz()["listening"]["feed"], b.healthz()["listening"]["http"]
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: not alive(old), message="the consumer process died")
    during = publish_batches(b, 2, 5)  # ingest goes on: every batch ACKed while consumers are down

    def restarted():
        try:
            return b.healthz(timeout=1.0)["consumers"]["restarts"] == 1
        except OSError:
            return False

    wait_until(restarted, timeout=30, message="the consumer process was started again")
    health = b.healthz()
    assert health["listening"]["feed"] == feed and health["listening"]["http"] == http  # same addresses
    assert health["consumers"]["pid"] != old
    after = publish_batches(b, 1, 5)
    all_seqs = {e["seq"] for e in b.events()}
    assert len(all_seqs) == len(before + during + after) == 25
    wait_until(lambda: set(recording.delivered_seqs()) == all_seqs, timeout=20, message="every event delivered after the restart")
    assert "the consumer process died" in b.log_text()
    # what was committed while it was down came from the log; what came after, from ingest
    tail = b.healthz()["consumers"]["tail"]
    assert tail["filled"] == 25 and tail["from_ingest"] == 5 and tail["errors"] == 0


def test_committed_events_reach_the_consumers_from_ingest_not_read_back_from_the_log(broker_factory):
    b = broker_factory(handlers=["metrics"])
    with b.client() as c:
        for seq in range(1, 4):
            assert c.publish(make_events(100), seq=seq)["accepted"] == 100
    wait_until(lambda: b.healthz()["consumers"]["tail"]["filled"] == 300, message="all 300 events in the consumers' cache")
    tail = b.healthz()["consumers"]["tail"]
    assert tail["from_ingest"] == 300 and tail["from_log"] == 0 and tail["errors"] == 0
    wait_until(lambda: b.healthz()["handlers"]["metrics"]["cursor"]["events"] == 300, message="metrics saw every event")


def test_killing_the_broker_ends_its_consumer_process_and_a_restart_works(broker_factory):
    b = broker_factory(handlers=["audit"])
    with b.client() as c:
        assert c.publish(make_events(5))["accepted"] == 5
    child = b.healthz()["consumers"]["pid"]
    b.kill()
    wait_until(lambda: not alive(child), message="the consumer process exited with its broker")
    b.start().wait_ready()
    assert len(b.events()) == 5


def test_events_committed_while_the_consumer_process_is_stalled_come_from_the_log_beyond_the_bound(broker_factory):
    """Ingest never waits for the consumer process: while it is frozen (SIGSTOP) at most a bounded
    number of committed events queue for the pipe; the rest are read from the log afterwards, and
    every event reaches the consumers once."""
    from secbus.consumers import supervisor, tail

    b = broker_factory(handlers=["metrics"])
    child = b.healthz()["consumers"]["pid"]
    event_bytes = len(wire.pack(make_events(1)[0]))
    total = 500 * (4 * max(supervisor.MAX_PENDING_BYTES, tail.MAX_PENDING_BYTES) // event_bytes // 500 + 1)
    os.kill(child, signal.SIGSTOP)
    try:
        with b.client() as c:
            for seq in range(1, total // 500 + 1):
                assert c.publish(make_events(500), seq=seq)["accepted"] == 500  # ACKed while consumers are frozen
    finally:
        os.kill(child, signal.SIGCONT)
    wait_until(lambda: b.healthz()["handlers"]["metrics"]["cursor"]["events"] == total, timeout=30,
               message="metrics saw every event")
    t = b.healthz()["consumers"]["tail"]
    assert t["filled"] == total and t["from_log"] > 0 and t["from_ingest"] + t["from_log"] == total and t["errors"] == 0
