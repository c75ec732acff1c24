"""Correlation and live feed promises, against the real broker.

Events from two services on two platforms that share a W3C trace id meet in
one closed trace (``on_trace``, the traces stream, the feed's ``trace``
topic, ``secbus trace``); open traces survive a broker restart.
"""

from __future__ import annotations

import msgpack
import zmq

from support.broker import wait_until
from support.events import make_event

FAST = {"correlation": {"trace_idle_ms": 300, "expire_interval_ms": 50}}


def two_service_trace(trace_id: str | None = None) -> list[dict]:
    front = make_event("authn.token.verify", platform="node", service="api", outcome="success")
    trace_id = trace_id or front["trace_id"]
    front["trace_id"] = trace_id
    back = make_event("authz.check", platform="python", service="billing", outcome="failure", trace_id=trace_id, ts=front["ts"] + 1000)
    return [front, back]


def test_events_from_two_services_sharing_a_trace_close_as_one_cross_platform_trace(broker_factory, recorder_installed, recording):
    b = broker_factory(config={**FAST, "handlers": {"recorder": {"out": str(recording.path)}}}, handlers=["recorder"])
    front, back = two_service_trace()
    other = make_event("authn.login", service="web")
    with b.client() as c:
        c.publish([front, other])
        c.publish([back])
    traces = wait_until(lambda: len(recording.traces()) == 2 and recording.traces(), message="two closed traces")
    (shared,) = [t for t in traces if t["trace_id"] == front["trace_id"]]
    assert [e["id"] for e in shared["events"]] == [front["id"], back["id"]]
    assert shared["platforms"] == ["node", "python"]
    assert shared["services"] == ["api", "billing"]
    assert "cross_platform" in shared["flags"] and "mixed_outcomes" in shared["flags"]
    assert shared["tenant"] == "default" and shared["seq"] >= 1
    stored = [t for t in b.traces() if t["trace_id"] == front["trace_id"]]
    assert len(stored) == 1 and stored[0]["events"] == shared["events"]


def test_open_trace_survives_a_restart_and_closes_once_with_all_its_events(broker_factory):
    b = broker_factory(config={"correlation": {"trace_idle_ms": 1500, "expire_interval_ms": 50}}, handlers=[])
    first, second = two_service_trace()
    with b.client() as c:
        c.publish([first])
    wait_until(lambda: b.healthz()["open_traces"] == 1, message="the trace is open")
    b.kill()  # the open trace lived only in memory
    b.start().wait_ready()
    with b.client() as c:
        c.publish([second])
    wait_until(lambda: b.traces(), timeout=15, message="the trace closed after the restart")
    wait_until(lambda: b.healthz()["open_traces"] == 0, message="nothing left open")
    traces = b.traces()
    assert len(traces) == 1
    assert [e["id"] for e in traces[0]["events"]] == [first["id"], second["id"]]


def test_live_feed_publishes_events_traces_and_filters_by_topic_prefix(broker_factory):
    b = broker_factory(config=FAST, handlers=[])
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(b.feed)
    sub.setsockopt(zmq.SUBSCRIBE, b"event.authz.")
    sub.setsockopt(zmq.SUBSCRIBE, b"trace")
    wait_until(lambda: b.healthz()["feed"]["subscriptions"] == 2, message="the feed saw both subscriptions")
    authz = make_event("authz.check")
    with b.client() as c:
        c.publish([make_event("authn.login"), authz])
    received = []

    def got_trace():
        while sub.poll(50):
            topic, body = sub.recv_multipart()
            received.append((topic, msgpack.unpackb(body, raw=False)))
        return any(t == b"trace" and m["trace_id"] == authz["trace_id"] for t, m in received)

    wait_until(got_trace, message=lambda: f"the authz trace on the feed, got {[t for t, _ in received]}")
    events = [(t, m) for t, m in received if t.startswith(b"event.")]
    assert [t for t, _ in events] == [b"event.authz.check"]  # authn.login was filtered out
    assert events[0][1]["id"] == authz["id"] and events[0][1]["seq"] == 2
    sub.close(0)


def test_a_killed_correlator_process_is_started_again_and_every_trace_is_stored_once(broker_factory, recorder_installed, recording):
    """The correlator runs in a process of its own; SIGKILLed between two waves of traces,
    another one resumes from its cursor: every trace reaches on_trace and the log once."""
    import os
    import signal

    b = broker_factory(config={**FAST, "handlers": {"recorder": {"out": str(recording.path)}}}, handlers=["recorder"])
    health = b.healthz()
    pid = health["correlator"]["process"]["pid"]
    assert pid not in (None, health["consumers"]["pid"], health["pid"])
    waves = [[e for _ in range(10) for e in two_service_trace()] for _ in range(2)]
    with b.client() as c:
        c.publish(waves[0])
        wait_until(lambda: b.healthz()["correlator"]["position"] == 20, message="the first wave read")
        os.kill(pid, signal.SIGKILL)  # its 10 traces are still open: they live only in its memory
        wait_until(lambda: b.healthz()["correlator"]["process"]["restarts"] == 1, timeout=15, message="another correlator process")
        c.publish(waves[1])
    expected = {e["trace_id"] for wave in waves for e in wave}
    wait_until(lambda: {t["trace_id"] for t in recording.traces()} == expected, timeout=15,
               message=lambda: f"20 traces delivered, have {len(recording.traces())}")
    wait_until(lambda: b.healthz()["open_traces"] == 0, message="nothing left open")
    assert sorted(t["trace_id"] for t in b.traces()) == sorted(expected)  # stored once each
    assert all(len(t["events"]) == 2 for t in recording.traces())
    assert b.healthz()["correlator"]["process"]["pid"] != pid
    assert "correlator process ended" in b.log_text()
