"""The metrics handler's instruments and cardinality guard, read through the
Prometheus exposition it serves.  (The /metrics endpoint of a real broker:
test_metrics_broker.py.)"""

from __future__ import annotations

import time

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from secbus.handlers.metrics.guard import OTHER, CardinalityGuard
from secbus.handlers.metrics.plugin import MetricsHandler

from support.events import stored_trace

from .events import make_event
from .helpers import PluginHandle


class StatsHandle(PluginHandle):
    def stats(self):
        return {"rejects": {"invalid": 3, "too_large": 1}, "open_traces": 2,
                "handlers": {"audit": {"state": "running", "lag": 7, "failures": 1, "skipped": 0},
                             "alerting": {"state": "retrying", "lag": {"events": 4, "traces": 1}, "failures": 0, "skipped": 5},
                             "typo": {"state": "skipped", "reason": "no such hook"}},
                "correlator": {"lag": {"events": 9}}, "ingest": {"backlog": 12, "max_backlog": 1000},
                "log": {"size_bytes": 4096}, "consumers": {"restarts": 1}}


def samples(handler: MetricsHandler) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(generate_latest(handler.registry).decode()):
        for s in family.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if not k.startswith("otel_")))
            out[(s.name, labels)] = s.value
    return out


def started(tmp_path, **settings) -> MetricsHandler:
    handler = MetricsHandler()
    handler.startup(StatsHandle("metrics", settings, tmp_path))
    return handler


def test_events_are_counted_by_type_outcome_platform_and_tenant(tmp_path):
    m = started(tmp_path)
    m.on_events([make_event("authn.login", "failure", platform="node") for _ in range(3)]
                + [make_event("authz.check", "success", duration_us=2500)])
    got = samples(m)
    key = ("secbus_events_total", (("outcome", "failure"), ("platform", "node"), ("tenant", "default"), ("type", "authn.login")))
    assert got[key] == 3
    assert got[("secbus_verification_duration_seconds_count", (("outcome", "success"), ("type", "authz.check")))] == 1
    assert got[("secbus_verification_duration_seconds_sum", (("outcome", "success"), ("type", "authz.check")))] == 0.0025


def test_traces_alerts_and_broker_figures_are_exposed(tmp_path):
    m = started(tmp_path)
    m.on_trace(stored_trace({"flags": ["cross_platform", "mixed_outcomes"], "events": [{"id": "x"}]}))
    m.on_trace(stored_trace({"flags": []}))
    m.on_alert({"rule": "authn-brute-force", "severity": "high"})
    got = samples(m)
    assert got[("secbus_traces_closed_total", (("flag", "cross_platform"),))] == 1
    assert got[("secbus_traces_closed_total", (("flag", "none"),))] == 1
    assert got[("secbus_alerts_total", (("rule", "authn-brute-force"), ("severity", "high")))] == 1
    assert got[("secbus_ingest_rejects_total", (("code", "invalid"),))] == 3
    assert got[("secbus_handler_lag", (("handler", "audit"),))] == 7
    assert got[("secbus_handler_lag", (("handler", "alerting"),))] == 5
    assert got[("secbus_handler_skipped_total", (("handler", "alerting"),))] == 5
    assert got[("secbus_open_traces", ())] == 2


def test_the_broker_health_figures_an_alerting_rule_needs_are_exposed(tmp_path):
    got = samples(started(tmp_path))
    running = {dict(labels)["handler"]: v for (name, labels), v in got.items() if name == "secbus_handler_running"}
    assert running == {"audit": 1, "alerting": 0, "typo": 0}
    assert got[("secbus_correlator_lag", ())] == 9
    assert got[("secbus_ingest_backlog", ())] == 12 and got[("secbus_ingest_max_backlog", ())] == 1000
    assert got[("secbus_log_size_bytes", ())] == 4096
    assert got[("secbus_consumers_restarts_total", ())] == 1


def test_sdk_spool_and_drop_figures_come_from_perf_sdk_stats_events(tmp_path):
    m = started(tmp_path)
    report = make_event("perf.sdk.stats", "success", service="checkout",
                        attrs={"queued": 10, "spooled": 250, "dropped": 3, "replayed": 0})
    report["source"].update(host="web-1", pid=4242)
    m.on_events([report])
    got = samples(m)
    labels = (("instance", "web-1:4242"), ("platform", "python"), ("service", "checkout"))
    assert got[("secbus_sdk_spooled", labels)] == 250 and got[("secbus_sdk_dropped", labels)] == 3


def test_a_client_that_stopped_reporting_is_forgotten_and_an_older_report_never_wins(tmp_path):
    def report(pid: int, age_s: float, spooled: int) -> dict:
        event = make_event("perf.sdk.stats", "success", service="checkout", attrs={"spooled": spooled},
                           ts=time.time_ns() - int(age_s * 1e9))
        event["source"].update(host="web-1", pid=pid)
        return event

    m = started(tmp_path, sdk_report_ttl=300)
    m.on_events([report(1, 400, 50), report(2, 10, 7), report(2, 20, 99)])  # pid 1 exited long ago
    spooled = {dict(labels)["instance"]: v for (name, labels), v in samples(m).items() if name == "secbus_sdk_spooled"}
    assert spooled == {"web-1:2": 7}  # pid 1 gone; pid 2's latest report (10 s old), not the last delivered


def test_label_values_past_the_cap_fold_into_other_and_totals_stay_right(tmp_path):
    m = started(tmp_path, max_label_values=3)
    m.on_events([make_event(f"authn.kind{i}", "success") for i in range(10)])
    got = samples(m)
    types = {dict(labels)["type"]: v for (name, labels), v in got.items() if name == "secbus_events_total"}
    assert len(types) == 4 and types[OTHER] == 7 and sum(types.values()) == 10


def test_the_guard_keeps_known_values_and_counts_folds():
    guard = CardinalityGuard(cap=2)
    assert [guard.value("i", "l", v) for v in ("a", "b", "c", "a", "d")] == ["a", "b", OTHER, "a", OTHER]
    assert guard.folded[("i", "l")] == 2
    assert guard.value("j", "l", "c") == "c"  # per instrument and label


def test_the_metrics_route_is_added_through_the_app_handle(tmp_path):
    handle = StatsHandle("metrics", {}, tmp_path)
    MetricsHandler().startup(handle)
    assert [(m, p) for m, p, _ in handle.routes] == [("GET", "/metrics")]


def family_lines(registry, name: str) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines()
            if line.split("{")[0].split(" ")[0].startswith(name) or line.split(" ")[2:3] == [name]]


def test_the_duration_histogram_prints_exactly_what_opentelemetry_prints_for_the_same_values(tmp_path):
    # The handler aggregates this histogram itself (histogram.py); the reference is an
    # OpenTelemetry Histogram with the same buckets behind the same Prometheus reader.
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
    from prometheus_client import CollectorRegistry

    from secbus.handlers.metrics.plugin import DURATION_BUCKETS, SCOPE

    reference = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(disable_target_info=True, registry=reference)],
                             views=[View(instrument_name="secbus.verification.duration",
                                         aggregation=ExplicitBucketHistogramAggregation(DURATION_BUCKETS))])
    histogram = provider.get_meter(SCOPE).create_histogram(
        "secbus.verification.duration", unit="s", description="Duration of verification checks (duration_us of events)")
    durations = [0, 99, 100, 101, 61, 1_000_000, 1_000_001, 10_000_000, 25_000_000, 7, 123_456, 2_500_000]
    events = [make_event(("authn.login", "authz.check")[i % 2], ("success", "failure", "error")[i % 3],
                         duration_us=d) for i, d in enumerate(durations * 3)]
    m = started(tmp_path)
    m.on_events(events[:20])
    m.on_events(events[20:])
    for event in events:
        histogram.record(event["duration_us"] / 1e6, {"type": event["type"], "outcome": event["outcome"]})
    name = "secbus_verification_duration_seconds"
    assert family_lines(m.registry, name) == family_lines(reference, name)
    assert len(family_lines(m.registry, name)) == 2 + 6 * (len(DURATION_BUCKETS) + 3)


def test_closed_traces_counted_between_scrapes_are_all_in_the_next_scrape(tmp_path):
    m = started(tmp_path)
    for _ in range(5):
        m.on_trace(stored_trace({"flags": ["late"]}))
    assert samples(m)[("secbus_traces_closed_total", (("flag", "late"),))] == 5
    m.on_trace(stored_trace({"flags": ["late"]}))
    assert samples(m)[("secbus_traces_closed_total", (("flag", "late"),))] == 6


def test_a_scrape_that_sees_events_counted_sees_their_durations(tmp_path):
    # Scrape at the worst moment: from inside the counter's add(), as a concurrent scrape could.
    m = started(tmp_path)
    counter = m.events
    seen = []

    class ScrapingCounter:
        def add(self, n, attributes):
            seen.append(samples(m).get(("secbus_verification_duration_seconds_count",
                                        (("outcome", "success"), ("type", "authz.check")))))
            counter.add(n, attributes)

    m.events = ScrapingCounter()
    m.on_events([make_event("authz.check", "success", duration_us=2500) for _ in range(3)])
    assert seen == [3]
