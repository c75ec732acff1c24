"""Handler dispatch promises: real entry points, isolation, at-least-once, lag policies.

The handler here is ``recorder`` (tests/broker/plugins/recorder), a separate
distribution installed with pip and found through the ``secbus.handlers``
entry point exactly like a third-party plugin.
"""

from __future__ import annotations

import time

import msgpack
import zmq

from secbus_sdk import wire
from support.broker import wait_until
from support.events import make_events


def recorder_config(recording, **settings) -> dict:
    return {"handlers": {"recorder": {"out": str(recording.path), **settings}}}


def publish_batches(b, batches: int, size: int) -> list[dict]:
    events = []
    with b.client() as c:
        for i in range(batches):
            batch = make_events(size)
            assert c.publish(batch, seq=i)["accepted"] == size
            events += batch
    return events


def test_third_party_handler_installed_with_an_entry_point_receives_events(broker_factory, recorder_installed, recording):
    b = broker_factory(config=recorder_config(recording), handlers=["recorder"])
    events = publish_batches(b, 3, 5)
    wait_until(lambda: len(recording.delivered_seqs()) == 15, message=lambda: f"15 events delivered, have {recording.delivered_seqs()}")
    got = [i for r in recording.records() if r["hook"] == "on_events" for i in r["ids"]]
    assert got == [e["id"] for e in events]  # in log order
    start = recording.records()[0]
    assert start == {"hook": "startup", "name": "recorder", "data_dir": str(b.data_dir.resolve())}
    b.stop()
    assert recording.hooks()[-1] == "shutdown"


def test_a_handler_declaring_only_stored_gets_the_same_batches_as_stored_rows(broker_factory, recorder_installed, recording, tmp_path):
    """on_events(stored): rows (seq, received_ns, publisher, tenant, body) that decode to exactly
    the dicts a handler taking ``events`` is given, in the same order."""
    rows_out = tmp_path / "stored-recorder.jsonl"
    config = {"handlers": {"recorder": {"out": str(recording.path)}, "stored-recorder": {"out": str(rows_out), "batch_size": 7}}}
    b = broker_factory(config=config, handlers=["recorder", "stored-recorder"])
    events = publish_batches(b, 4, 10)
    stored = type(recording)(rows_out)
    wait_until(lambda: len(recording.delivered_seqs()) == 40 and len(stored.delivered_seqs()) == 40,
               message=lambda: f"40 events each, have {len(recording.delivered_seqs())} and {len(stored.delivered_seqs())}")
    calls = [r for r in stored.records() if r["hook"] == "on_events"]
    assert all(r["rows"] for r in calls) and max(len(r["seqs"]) for r in calls) <= 7
    assert stored.delivered_seqs() == list(range(1, 41))
    assert [i for r in calls for i in r["ids"]] == [e["id"] for e in events]
    decoded = [e for r in calls for e in r["events"]]
    assert decoded[0]["publisher"] and decoded[0]["tenant"] == "default" and decoded[0]["received_ns"] > 0
    assert [{k: v for k, v in e.items() if k not in ("seq", "received_ns", "publisher", "tenant")} for e in decoded] == events
    assert b.healthz()["handlers"]["stored-recorder"]["cursor"]["events"] == 40


def test_handler_raising_on_every_third_batch_still_sees_every_event(broker_factory, recorder_installed, recording):
    b = broker_factory(config=recorder_config(recording, fail_every=3, batch_size=7), handlers=["recorder"])
    publish_batches(b, 10, 10)
    wait_until(lambda: set(recording.delivered_seqs()) >= set(range(1, 101)), timeout=30, message="all 100 events delivered despite failures")
    health = b.healthz()["handlers"]["recorder"]
    assert health["failures"] >= 3
    assert health["cursor"]["events"] == 100
    assert "failing call" in health["last_error"]
    assert "handler recorder failed on events seq" in b.log_text()


def test_slow_handler_does_not_slow_ingest(broker_factory, recorder_installed, recording):
    b = broker_factory(config=recorder_config(recording, sleep_s=5.0, batch_size=10), handlers=["recorder"])
    publish_batches(b, 20, 10)  # every ACK arrives (within the client's timeout) while the handler sleeps
    health = b.healthz()
    assert health["log"]["streams"]["events"]["head"] == 200
    assert health["handlers"]["recorder"]["lag"]["events"] >= 180
    b.kill()  # no need to wait for the slow handler to drain


def test_drop_policy_skips_ahead_past_max_lag_and_counts_what_it_skipped(broker_factory, recorder_installed, recording):
    b = broker_factory(config=recorder_config(recording, sleep_s=0.3, batch_size=5, lag_policy="drop", max_lag=20), handlers=["recorder"])
    publish_batches(b, 10, 20)
    health = wait_until(lambda: (h := b.healthz()["handlers"]["recorder"])["cursor"]["events"] == 200 and h, timeout=30, message="the drop handler caught up")
    delivered = set(recording.delivered_seqs())
    assert health["skipped"] > 0
    assert len(delivered) + health["skipped"] == 200
    assert set(range(181, 201)) <= delivered  # the newest max_lag events are always delivered


def test_block_policy_handler_resumes_from_its_cursor_after_restart(broker_factory, recorder_installed, recording):
    b = broker_factory(config=recorder_config(recording, batch_size=10), handlers=["recorder"])
    publish_batches(b, 3, 10)
    wait_until(lambda: len(recording.delivered_seqs()) == 30, message="30 delivered")
    b.stop()
    b.start().wait_ready()
    publish_batches(b, 2, 10)
    wait_until(lambda: len(set(recording.delivered_seqs())) == 50, message="50 delivered")
    assert sorted(recording.delivered_seqs()) == list(range(1, 51))  # nothing twice after a clean stop


def test_shutdown_drains_the_handler_backlog_before_exit(broker_factory, recorder_installed, recording):
    b = broker_factory(config=recorder_config(recording, sleep_s=0.2, batch_size=10), handlers=["recorder"])
    publish_batches(b, 5, 10)
    assert b.stop() == 0
    assert sorted(recording.delivered_seqs()) == list(range(1, 51))
    assert recording.hooks()[-1] == "shutdown"


def test_handler_failing_at_startup_stays_stopped_and_ingest_keeps_working(broker_factory, recorder_installed, recording):
    b = broker_factory(config=recorder_config(recording, fail_startup=True), handlers=["recorder"])
    publish_batches(b, 1, 3)
    health = b.healthz()["handlers"]["recorder"]
    assert health["state"] == "failed"
    assert "told to fail at startup" in health["last_error"]


def test_unknown_handler_name_is_skipped_with_a_warning_not_a_crash(broker_factory, recorder_installed, recording):
    b = broker_factory(config=recorder_config(recording), handlers=["no-such-handler", "recorder"])
    publish_batches(b, 1, 2)
    health = b.healthz()["handlers"]
    assert health["no-such-handler"]["state"] == "skipped"
    assert "not installed" in health["no-such-handler"]["reason"]
    wait_until(lambda: len(recording.delivered_seqs()) == 2, message="recorder still runs")
    assert "'no-such-handler' is enabled but not installed" in b.log_text()


def test_published_alert_reaches_on_alert_and_the_alerts_stream(broker_factory, recorder_installed, recording):
    b = broker_factory(config=recorder_config(recording, alert_on_type="authz.deny"), handlers=["recorder"])
    events = make_events(1, type="authz.deny")
    with b.client() as c:
        c.publish(events)
    alert = wait_until(lambda: recording.alerts(), message="on_alert called")[0]
    assert alert["severity"] == "high" and alert["event_ids"] == [events[0]["id"]]
    assert alert["seq"] == 1 and alert["id"]
    assert [a["summary"] for a in b.alerts()] == [alert["summary"]]


def test_backlog_over_max_backlog_answers_overloaded_with_retry_after(broker_factory, recorder_installed, recording):
    b = broker_factory(
        config={**recorder_config(recording, sleep_s=5.0, batch_size=1), "ingest": {"max_backlog": 20, "retry_after_ms": 250}},
        handlers=["recorder"],
    )
    with b.client() as c:
        c.publish(make_events(30))  # accepted: the bound is checked before a batch
        command, body = c.request(wire.PUB, {"seq": 2, "events": make_events(1)})
    assert command == wire.ERR
    assert body["code"] == "overloaded" and body["retry_after_ms"] == 250 and body["seq"] == 2
    assert b.healthz()["rejects"]["overloaded"] == 1
    b.kill()


def test_published_alert_is_on_the_live_feed_as_alert_severity(broker_factory, recorder_installed, recording):
    b = broker_factory(config=recorder_config(recording, alert_on_type="authz.deny"), handlers=["recorder"])
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(b.feed)
    sub.setsockopt(zmq.SUBSCRIBE, b"alert.")
    wait_until(lambda: b.healthz()["feed"]["subscriptions"] == 1, message="subscribed")
    with b.client() as c:
        c.publish(make_events(1, type="authz.deny"))
    assert sub.poll(10_000), "no alert on the feed"
    topic, body = sub.recv_multipart()
    sub.close(0)
    assert topic == b"alert.high"
    assert msgpack.unpackb(body)["rule"] == "recorder"


def test_publish_alert_with_a_bad_severity_fails_the_handler_naming_the_field(broker_factory, recorder_installed, recording):
    b = broker_factory(config=recorder_config(recording, alert_on_type="authz.deny", alert_severity="bogus"), handlers=["recorder"])
    with b.client() as c:
        c.publish(make_events(1, type="authz.deny"))
    health = wait_until(lambda: (h := b.healthz()["handlers"]["recorder"])["failures"] >= 1 and h, message="the handler failed")
    assert "severity" in health["last_error"] and "'bogus'" in health["last_error"]
    assert b.alerts() == []
    b.kill()


def test_handler_with_a_misspelt_hook_is_skipped_naming_the_hook(broker_factory, recorder_installed, recording):
    b = broker_factory(config=recorder_config(recording), handlers=["typo", "recorder"])
    health = b.healthz()["handlers"]
    assert health["typo"]["state"] == "skipped"
    assert "'on_event', which is not a secbus hook" in health["typo"]["reason"]
    publish_batches(b, 1, 2)
    wait_until(lambda: len(recording.delivered_seqs()) == 2, message="the other handler runs")
