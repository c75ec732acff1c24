"""The Python SDK reports its own counters as ``perf.sdk.stats`` events (proto/EVENTS.md).

Against a real broker process: the reports land in the broker's log with the
six attrs EVENTS.md lists, valid under ``validate_event`` and the JSON schema,
turn into ``failure``/``high`` once events were dropped, reach the metrics
handler's ``secbus_sdk_*`` gauges, and ``close()`` adds a final report only
when there is something new to say.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import socket

import pytest
from jsonschema import Draft202012Validator

from secbus_sdk import Client
from secbus_sdk.event import BROKER_FIELDS, validate_event

pytest.importorskip("secbus.ingest", reason="the broker is not in this tree yet")
from support.broker import start_broker, wait_until  # noqa: E402

pytestmark = pytest.mark.timeout(60)

STATS_ATTRS = {"queued", "spooled", "dropped", "fallback", "replayed", "rejected"}
SCHEMA = json.loads((pathlib.Path(__file__).resolve().parents[2] / "proto" / "event.schema.json").read_text())


def reports(broker, service: str) -> list[dict]:
    return [e for e in broker.events()
            if e["type"] == "perf.sdk.stats" and e["source"]["service"] == service and e["source"]["pid"] == os.getpid()]


def as_emitted(event: dict) -> dict:
    """The stored event without the fields the broker adds."""
    return {k: v for k, v in event.items() if k not in BROKER_FIELDS}


@pytest.fixture
def clients(tmp_path):
    made: list[Client] = []

    def make(endpoint: str, service: str, **options) -> Client:
        c = Client(endpoint, service, spool_dir=str(tmp_path / f"spool-{service}"), **options)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close(0)


def test_client_reports_its_counters_every_interval_as_valid_stats_events(tmp_path, clients):
    broker = start_broker(tmp_path / "b", handlers=[])
    try:
        client = clients(broker.ingest, "stats-periodic", stats_interval=0.2)
        for i in range(5):
            client.emit("authn.password.verify", "success", resource=f"/login/{i}")
        assert client.flush(10)
        # A heartbeat: reports keep coming while the client is idle.
        got = wait_until(lambda: len(reports(broker, "stats-periodic")) >= 3 and reports(broker, "stats-periodic"),
                         20, message="3 perf.sdk.stats reports")
        app = [e for e in broker.events() if e["type"] == "authn.password.verify"]
        assert len(app) == 5
        validator = Draft202012Validator(SCHEMA)
        for event in got:
            assert set(event["attrs"]) == STATS_ATTRS
            assert all(type(v) is int and v >= 0 for v in event["attrs"].values())
            assert event["attrs"]["dropped"] == 0 and event["attrs"]["fallback"] == 0
            assert event["attrs"]["rejected"] == 0 and event["attrs"]["spooled"] == 0
            assert (event["outcome"], event["severity"]) == ("success", "info")
            assert event["source"]["platform"] == "python"
            emitted = as_emitted(event)
            validate_event(emitted)
            validator.validate(emitted)
        # A report is read before it is queued: idle, it never counts itself as queued.
        assert got[-1]["attrs"]["queued"] == 0
        stats = client.stats()
        assert stats["dropped"] == 0 and stats["invalid_input"] == 0
    finally:
        broker.stop()


def test_dropped_events_turn_the_report_into_a_high_severity_failure(tmp_path, clients):
    broker = start_broker(tmp_path / "b", handlers=[])
    try:
        client = clients(broker.ingest, "stats-dropping", stats_interval=0.2, queue_size=1, batch_size=1)
        for _ in range(3000):  # far faster than a one-event queue drains
            client.emit("authz.access.check", "success", resource="/doc")
        dropped = client.stats()["dropped"]
        assert dropped > 0

        def failing():
            return [e for e in reports(broker, "stats-dropping") if e["attrs"]["dropped"] >= dropped]

        event = wait_until(failing, 20, message="a report with the dropped count")[-1]
        assert (event["outcome"], event["severity"]) == ("failure", "high")
        assert event["attrs"]["dropped"] == client.stats()["dropped"]  # the report never adds its own drops
        validate_event(as_emitted(event))
    finally:
        broker.stop()


def test_metrics_endpoint_exposes_the_reported_figures_as_sdk_gauges(tmp_path, clients):
    broker = start_broker(tmp_path / "b", handlers=["metrics"])
    try:
        client = clients(broker.ingest, "stats-metrics", stats_interval=0.2)
        client.emit("authn.token.verify", "success")

        def gauges():
            status, body = broker.get("/metrics")
            lines = [line for line in body.splitlines()
                     if line.startswith("secbus_sdk_") and 'service="stats-metrics"' in line]
            return status == 200 and {line.split("{")[0] for line in lines} >= {
                f"secbus_sdk_{name}" for name in STATS_ATTRS} and lines

        lines = wait_until(gauges, 20, message="secbus_sdk_* gauges for service stats-metrics in /metrics")
        dropped = [line for line in lines if line.startswith("secbus_sdk_dropped{")]
        assert dropped and all(float(line.rsplit(" ", 1)[1]) == 0 for line in dropped)
        assert all(f'instance="{socket.gethostname()}:{os.getpid()}"' in line for line in lines)
    finally:
        broker.stop()


def test_close_sends_a_final_report_only_when_there_is_something_new(tmp_path, clients):
    broker = start_broker(tmp_path / "b", handlers=[])
    try:
        busy = clients(broker.ingest, "stats-final-busy", stats_interval=3600)
        idle = clients(broker.ingest, "stats-final-idle", stats_interval=3600)
        for _ in range(4):
            busy.emit("authn.password.verify", "failure", reason="bad_password")
        busy.close(10)
        idle.close(10)
        final = wait_until(lambda: reports(broker, "stats-final-busy"), 20, message="the final report at close")
        assert len(final) == 1 and set(final[0]["attrs"]) == STATS_ATTRS
        # the idle client: nothing carried, nothing to report (its close flushed, so it would be there)
        assert wait_until(lambda: len(broker.events()) >= 5, 10)
        assert reports(broker, "stats-final-idle") == []
    finally:
        broker.stop()


def test_no_final_report_when_nothing_changed_since_the_last_one(tmp_path, clients):
    broker = start_broker(tmp_path / "b", handlers=[])
    try:
        client = clients(broker.ingest, "stats-unchanged", stats_interval=3600)
        client.emit("authn.password.verify", "success")
        assert client.flush(10)
        assert client._report_stats() is True  # the job the sender thread runs every interval
        assert client.flush(10)
        sent = client.stats()["sent"]
        client.close(10)
        assert client.stats()["sent"] == sent  # same counters as the last report: close added none
        stored = reports(broker, "stats-unchanged")
        assert len(stored) == 1 and stored[0]["attrs"] == dict.fromkeys(STATS_ATTRS, 0)
    finally:
        broker.stop()


@pytest.mark.parametrize("off", [0, 0.0, None])
def test_stats_interval_zero_or_none_sends_no_reports(tmp_path, clients, off):
    broker = start_broker(tmp_path / "b", handlers=[])
    try:
        client = clients(broker.ingest, "stats-off", stats_interval=off)
        client.emit("authn.password.verify", "success")
        client.close(10)
        wait_until(lambda: any(e["type"] == "authn.password.verify" for e in broker.events()), 20)
        assert reports(broker, "stats-off") == []
    finally:
        broker.stop()


@pytest.mark.parametrize("bad", [-1, "60", math.nan, math.inf, True, [60]])
def test_bad_stats_interval_is_refused_naming_the_option(tmp_path, bad):
    with pytest.raises(ValueError, match="stats_interval"):
        Client("tcp://127.0.0.1:1", "x", spool_dir=str(tmp_path), stats_interval=bad)
