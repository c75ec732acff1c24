"""The metrics handler behind a real broker: /metrics on the broker's HTTP port
reflects published events, rejects, alerts and handler lag."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

# Skip (not fail) on a tree where the broker cannot run handlers yet.
pytest.importorskip("secbus.consumers.runner", reason="the broker's handler runner is not in this tree yet")

from support.broker import start_broker, wait_until
from support.events import make_event


def scrape(broker) -> dict[tuple, float]:
    status, body = broker.get("/metrics")
    assert status == 200, body
    out = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if not k.startswith("otel_")))
            out[(s.name, labels)] = s.value
    return out


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def test_the_metrics_endpoint_reflects_published_events_rejects_and_alerts(tmp_path):
    broker = start_broker(tmp_path, handlers=["metrics", "alerting"])
    try:
        failures = [make_event("authn.login", outcome="failure", actor={"user": "alice"}, duration_us=1500)
                    for _ in range(5)]
        node = [make_event("authz.check", platform="node") for _ in range(2)]
        bad = make_event("authn.login", trace_id="NOT-HEX")
        with broker.client() as client:
            ack = client.publish(failures + node + [bad])
        assert ack["accepted"] == 7 and [r[1] for r in ack["rejected"]] == ["invalid"]

        def counted():
            got = scrape(broker)
            login = value(got, "secbus_events_total", type="authn.login", outcome="failure", platform="python",
                          tenant="default")
            check = value(got, "secbus_events_total", type="authz.check", outcome="success", platform="node",
                          tenant="default")
            alerts = value(got, "secbus_alerts_total", rule="authn-brute-force", severity="high")
            return got if (login, check, alerts) == (5, 2, 1) else None
        got = wait_until(counted, 20, message="events and the brute-force alert counted in /metrics")
        assert value(got, "secbus_ingest_rejects_total", code="invalid") >= 1
        assert value(got, "secbus_verification_duration_seconds_count", type="authn.login", outcome="failure") == 5
        assert ("secbus_handler_lag", (("handler", "metrics"),)) in got
    finally:
        broker.stop()


def test_label_values_past_the_cap_fold_into_other_behind_the_broker(tmp_path):
    broker = start_broker(tmp_path, config={"handlers": {"metrics": {"max_label_values": 2}}}, handlers=["metrics"])
    try:
        with broker.client() as client:
            client.publish([make_event(f"authn.kind{i}") for i in range(6)])

        def folded():
            got = scrape(broker)
            types = {dict(l)["type"]: v for (n, l), v in got.items() if n == "secbus_events_total"}
            return types if sum(types.values()) == 6 else None
        types = wait_until(folded, 20, message="6 events in /metrics")
        assert len(types) == 3 and types["other"] == 4
    finally:
        broker.stop()


def test_closed_traces_are_counted_by_flag_and_handler_failures_are_visible(tmp_path):
    broker = start_broker(tmp_path, config={
        "correlation": {"trace_idle_ms": 200, "expire_interval_ms": 50},
        "handlers": {"shutdown_deadline_s": 1.0,  # the webhook never catches up: do not wait 10 s at stop
                     "alert-webhook": {"url": "http://127.0.0.1:9/unreachable", "retries": 0, "timeout": 0.5}}},
        handlers=["metrics", "alerting", "alert-webhook"])
    try:
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        with broker.client() as client:
            client.publish([make_event("authn.token.verify", trace_id=trace_id, platform="python"),
                            make_event("authn.token.verify", outcome="failure", trace_id=trace_id, platform="node"),
                            make_event("security.attack.detected", outcome="failure", severity="critical")])

        def seen():
            got = scrape(broker)
            cross = value(got, "secbus_traces_closed_total", flag="cross_platform")
            mixed = value(got, "secbus_traces_closed_total", flag="mixed_outcomes")
            failures = value(got, "secbus_handler_failures_total", handler="alert-webhook")
            return got if cross == 1 and mixed == 1 and failures >= 1 else None
        wait_until(seen, 20, message="the closed trace and the failing webhook in /metrics")
    finally:
        broker.stop()
