"""``secbus alerts`` against a real broker's alerts stream: listing by rule, severity, time and
recency, and one alert shown with the events that raised it."""

from __future__ import annotations

import json

import pytest

from support.broker import run_secbus, start_broker, wait_until

from .test_alerting_broker import fired, login, publish, sentinel


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """Two brute-force alerts (alice, then bob; high) and the sentinel's (critical)."""
    b = start_broker(tmp_path_factory.mktemp("alerts"), handlers=["alerting"])
    publish(b, [login("failure", user) for user in ("alice",) * 5 + ("bob",) * 5])
    sentinel(b, "last")
    wait_until(lambda: len(fired(b, "authn-brute-force")) == 2, 20, message="both brute-force alerts")
    yield b
    b.stop()


def alerts(broker, *args) -> tuple[int, list[dict], str]:
    r = run_secbus("alerts", "--data-dir", str(broker.data_dir), "--json", *args)
    return r.returncode, [json.loads(line) for line in r.stdout.splitlines()], r.stderr


def test_alerts_are_listed_in_log_order_and_filtered_by_rule_severity_tenant_and_time(broker):
    stored = broker.alerts()
    code, listed, _ = alerts(broker)
    assert code == 0 and [a["id"] for a in listed] == [a["id"] for a in stored] and len(listed) == 3
    assert [a["rule"] for a in listed] == ["authn-brute-force", "authn-brute-force", "security-attack-detected"]
    _, listed, _ = alerts(broker, "--rule", "authn-brute-force")
    assert [a["group"] for a in listed] == ["tenant=default,actor.user=alice", "tenant=default,actor.user=bob"]
    _, listed, _ = alerts(broker, "--min-severity", "critical")
    assert [a["rule"] for a in listed] == ["security-attack-detected"]
    assert len(alerts(broker, "--min-severity", "high", "--since", "1h")[1]) == 3
    code, listed, stderr = alerts(broker, "--newest", "--limit", "1")
    assert [a["rule"] for a in listed] == ["security-attack-detected"] and "the last 1 matching alerts shown" in stderr
    code, listed, stderr = alerts(broker, "--limit", "2")
    assert len(listed) == 2 and "more match" in stderr
    code, listed, stderr = alerts(broker, "--limit", "all")
    assert code == 0 and len(listed) == 3 and stderr == ""
    assert len(alerts(broker, "--tenant", "default")[1]) == 3  # every triggering event is the default tenant's
    assert alerts(broker, "--tenant", "acme")[0] == 1
    code, listed, stderr = alerts(broker, "--until", "1h")
    assert code == 1 and listed == [] and "no stored alerts match" in stderr


def test_one_alert_is_shown_with_the_events_that_raised_it(broker):
    alice = next(a for a in broker.alerts() if a["group"].endswith("alice"))
    code, (shown,), _ = alerts(broker, alice["id"])
    assert code == 0 and shown["id"] == alice["id"]
    assert [e["id"] for e in shown["events"]] == alice["event_ids"]
    assert {e["actor"]["user"] for e in shown["events"]} == {"alice"}
    r = run_secbus("alerts", "--data-dir", str(broker.data_dir), alice["id"])
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and "HIGH  authn-brute-force" in lines[0] and f"id={alice['id']}" in lines[0]
    assert "group tenant=default,actor.user=alice; 5 event(s)" in lines[1]
    assert len(lines) == 7 and all("authn.login  failure" in line and "user=alice" in line for line in lines[2:])
    code, _, stderr = alerts(broker, "01234567-89ab-7def-8123-456789abcdef")
    assert code == 1 and "no stored alert 01234567-89ab-7def-8123-456789abcdef" in stderr


@pytest.mark.parametrize("args, message", [
    (["--min-severity", "urgent"], "--min-severity: expected one of info, low, medium, high, critical, got 'urgent'"),
    (["not-an-id"], "alert_id: expected a UUID in lowercase hex, got 'not-an-id'"),
    (["--limit", "-1"], "--limit: expected a positive integer or all, got '-1'"),
    (["--since", "last week"], "--since: expected a time ago such as 15m"),
])
def test_a_bad_option_is_named_and_exits_2(tmp_path, args, message):
    r = run_secbus("alerts", "--data-dir", str(tmp_path), *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr
