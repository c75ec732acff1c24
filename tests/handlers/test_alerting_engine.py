"""The alerting engine on its own: every rule kind fires on its pattern and
stays silent on near misses; suppression, escalation, idempotence, bounds.
Windows run on event time, so these tests set ``ts`` and never sleep.
(The same rules through a real broker: test_alerting_broker.py.)"""

from __future__ import annotations

import pytest

from secbus.handlers.alerting.conditions import RuleError, compile_where
from secbus.handlers.alerting.engine import Engine
from secbus.handlers.alerting.rules import load_rules, parse_rules

from support.events import stored_trace

from .events import SEC, make_event

T0 = 1_763_900_000 * SEC


def engine_for(text: str, **options):
    alerts: list[dict] = []
    engine = Engine(parse_rules(text, "test.toml"), alerts.append, **options)
    return engine, alerts


def defaults():
    alerts: list[dict] = []
    return Engine(load_rules(), alerts.append), alerts


def login(outcome, user="alice", ip="203.0.113.7", t=0.0, **kw):
    return make_event("authn.login", outcome, user=user, ip=ip, ts=T0 + int(t * SEC), **kw)


def of_rule(alerts, name):
    return [a for a in alerts if a["rule"] == name]


# ----------------------------------------------------------------- conditions

@pytest.mark.parametrize("table, event_kw, expected", [
    ({"type": "authn.login"}, {}, True),
    ({"type": "authn.logout"}, {}, False),
    ({"outcome": ["failure", "error"]}, {}, False),
    ({"type": {"prefix": "authn."}}, {}, True),
    ({"actor.ip": {"cidr": "203.0.113.0/24"}}, {}, True),
    ({"actor.ip": {"cidr": ["10.0.0.0/8", "2001:db8::/32"]}}, {}, False),
    ({"actor.ip": {"not_cidr": ["10.0.0.0/8"]}}, {}, True),
    ({"actor.ip": {"not_cidr": "203.0.113.0/24"}}, {}, False),
    ({"attrs.http.method": "POST"}, {"attrs": {"http.method": "POST"}}, True),
    ({"attrs.tries": {"gt": 3, "lte": 10}}, {"attrs": {"tries": 4}}, True),
    ({"attrs.tries": {"gt": 3}}, {"attrs": {"tries": "4"}}, False),
    ({"attrs.ua": {"regex": "(?i)^curl/"}}, {"attrs": {"ua": "Curl/8.0"}}, True),
    ({"attrs.ua": {"contains": "bot"}}, {"attrs": {"ua": "curl"}}, False),
    ({"attrs.tags": {"contains": "vip"}}, {"attrs": {"tags": ["vip", "eu"]}}, True),
    ({"severity": {"gte": "high"}}, {"severity": "critical"}, True),
    ({"severity": {"gte": "high"}}, {"severity": "medium"}, False),
    ({"severity": {"gte": "high"}}, {}, False),
    ({"reason": {"exists": False}}, {}, True),
    ({"reason": {"ne": "expired"}}, {}, True),
])
def test_each_condition_operator_matches_and_misses_as_documented(table, event_kw, expected):
    assert compile_where("t", table)(login("success", **event_kw)) is expected


def test_a_regex_test_answers_the_same_for_repeated_long_and_non_string_values(monkeypatch):
    """Regex answers are remembered per value (bounded); remembering never changes one."""
    from secbus.handlers.alerting import conditions

    monkeypatch.setattr(conditions, "MEMO_ENTRIES", 3)
    where = compile_where("t", {"type": {"regex": r"^authn\.(token|key)\."}})
    types = ["authn.token.validate", "authn.login", "authn.key.check", "authz.check", "authn.token.refresh"]
    for _ in range(3):  # first seen, then remembered (or, past the bound, searched again)
        assert [where({"type": t}) for t in types] == [True, False, True, False, True]
    long_type = "authn.token." + "x" * 300
    assert where({"type": long_type}) and where({"type": long_type})
    assert not where({"type": 7}) and not where({})


def test_trace_conditions_read_outcome_counts_by_key_and_flags_by_member():
    trace = {"outcomes": {"failure": 2, "success": 1}, "flags": ["cross_platform"], "platforms": ["node", "python"]}
    assert compile_where("t", {"outcomes": {"contains": "failure"}, "flags": {"contains": "cross_platform"}})(trace)
    assert not compile_where("t", {"outcomes": ["error", "unknown"]})(trace)
    assert compile_where("t", {"platforms": ["node"]})(trace)


@pytest.mark.parametrize("table, fragment", [
    ({"type": {"startswith": "a"}}, "unknown operator 'startswith'"),
    ({"attrs.ua": {"regex": "("}}, "bad regex '('"),
    ({"actor.ip": {"cidr": "10.0.0.300/8"}}, "'10.0.0.300/8'"),
    ({"duration_us": {"gt": "fast"}}, "expects a number"),
    ({"severity": {"gte": "urgent"}}, "expects a severity"),
    ({"outcome": {"in": "failure"}}, "expects a list"),
])
def test_a_bad_condition_is_a_load_error_naming_field_and_value(table, fragment):
    with pytest.raises(RuleError) as info:
        compile_where("rule 'x': where", table)
    assert fragment in str(info.value) and "rule 'x'" in str(info.value)


@pytest.mark.parametrize("text, fragment", [
    ('[[rule]]\nname="a"\nkind="often"\nseverity="high"', "kind: expected one of"),
    ('[[rule]]\nname="a"\nkind="threshold"\nseverity="high"\nthreshold=3', "window: required"),
    ('[[rule]]\nname="a"\nkind="threshold"\nseverity="high"\nwindow=60\nthreshold=0', "threshold: expected an integer >= 1, got 0"),
    ('[[rule]]\nname="a"\nkind="match"\nseverity="urgent"', "severity: expected one of"),
    ('[[rule]]\nname="a"\nkind="match"\nseverity="high"\nwindow=5', "unknown key(s) for a match rule: window"),
    ('[[rule]]\nname="a"\nkind="match"\nseverity="high"\n[[rule]]\nname="a"\nkind="match"\nseverity="low"', "defined twice"),
    ('[rules]\nx=1', "unknown top-level key"),
    ('[[rule]\nname=', "not valid TOML"),
])
def test_a_bad_rules_file_is_refused_with_a_message_naming_rule_and_key(text, fragment):
    with pytest.raises(RuleError) as info:
        parse_rules(text, "custom.toml")
    assert fragment in str(info.value) and "custom.toml" in str(info.value)


def test_the_default_rule_set_loads_and_covers_the_five_categories():
    names = [r.name for r in load_rules()]
    for category in ("authn", "authz", "config", "perf", "security"):
        assert any(n.startswith(category + "-") for n in names), category
    assert {r.kind for r in load_rules()} == {"match", "threshold", "distinct", "sequence", "trace"}


# ---------------------------------------------------------------------- match

def test_match_fires_on_a_high_attack_event_and_not_on_a_medium_one():
    engine, alerts = defaults()
    engine.process_events([make_event("security.attack.detected", "failure", severity="medium", ts=T0)])
    assert of_rule(alerts, "security-attack-detected") == []
    attack = make_event("security.attack.detected", "failure", severity="critical", ts=T0 + SEC, ip="198.51.100.9")
    engine.process_events([attack])
    [alert] = of_rule(alerts, "security-attack-detected")
    assert alert["severity"] == "critical" and alert["event_ids"] == [attack["id"]]
    assert alert["trace_ids"] == [attack["trace_id"]] and alert["count"] == 1


# ------------------------------------------------------------------ threshold

def test_threshold_fires_on_five_failures_in_a_minute_and_not_on_four():
    engine, alerts = defaults()
    engine.process_events([login("failure", t=i) for i in range(4)])
    assert of_rule(alerts, "authn-brute-force") == []
    fifth = login("failure", t=10)
    engine.process_events([fifth])
    [alert] = of_rule(alerts, "authn-brute-force")
    assert alert["count"] == 5 and alert["event_ids"][-1] == fifth["id"] and alert["severity"] == "high"
    assert alert["group"] == "tenant=default,actor.user=alice"
    assert alert["first_ts"] == T0 and alert["last_ts"] == fifth["ts"]


def test_threshold_stays_silent_when_the_failures_are_spread_beyond_the_window():
    engine, alerts = defaults()
    engine.process_events([login("failure", t=i * 20) for i in range(10)])  # never 5 within 60 s
    assert of_rule(alerts, "authn-brute-force") == []


def test_threshold_counts_each_group_apart():
    engine, alerts = defaults()
    engine.process_events([login("failure", user=f"user{i % 5}", t=i) for i in range(20)])  # 4 each
    assert of_rule(alerts, "authn-brute-force") == []


def test_a_group_reads_booleans_and_null_as_the_event_json_writes_them():
    engine, alerts = engine_for('[[rule]]\nname = "flagged"\nkind = "match"\nseverity = "low"\n'
                                'where = { type = "authn.login" }\ngroup_by = ["attrs.mfa", "attrs.via", "attrs.n", "actor.user"]\n')
    engine.process_events([login("success", t=0, attrs={"mfa": False, "via": None, "n": 3})])
    assert alerts[0]["group"] == "attrs.mfa=false,attrs.via=null,attrs.n=3,actor.user=alice"


def test_a_burst_yields_exactly_one_alert_and_counts_the_rest_as_suppressed():
    engine, alerts = defaults()
    burst = [login("failure", t=i * 0.1) for i in range(40)]
    engine.process_events(burst[:20])
    engine.process_events(burst[20:])
    assert len(of_rule(alerts, "authn-brute-force")) == 1
    state = engine.groups["authn-brute-force"]["tenant=default,actor.user=alice"].alert
    assert state["suppressed"] == 35
    # After the window, the next alert reports what the previous window swallowed.
    engine.process_events([login("failure", t=400 + i) for i in range(5)])
    first, second = of_rule(alerts, "authn-brute-force")
    assert second["suppressed"] == 35 and second["previous"] == first["id"] and second["count"] == 5


def test_suppressed_events_are_recorded_under_the_alert_that_stood_for_them():
    ledger: list[tuple] = []
    alerts: list[dict] = []
    engine = Engine(load_rules(), alerts.append, on_suppressed=lambda alert_id, ref: ledger.append((alert_id, ref)))
    burst = [login("failure", t=i) for i in range(8)]
    engine.process_events(burst)
    [alert] = of_rule(alerts, "authn-brute-force")
    assert [ref[2] for alert_id, ref in ledger if alert_id == alert["id"]] == [e["id"] for e in burst[5:]]


def test_a_threshold_rule_never_fires_twice_for_the_same_events_even_when_redelivered():
    engine, alerts = defaults()
    batch = [login("failure", t=i) for i in range(5)]
    engine.process_events(batch)
    engine.process_events(batch)            # at-least-once: the same batch again
    engine.process_events(batch[2:])
    assert len(of_rule(alerts, "authn-brute-force")) == 1
    assert engine.skipped_redelivered == 8


def test_no_suppression_still_never_reuses_events_of_an_earlier_alert():
    engine, alerts = engine_for('''
[[rule]]
name = "t"
kind = "threshold"
severity = "low"
where = { type = "authn.login" }
window = 60
threshold = 3
suppress = 0
''')
    engine.process_events([login("failure", t=i) for i in range(7)])
    assert [a["count"] for a in alerts] == [3, 3]
    assert not set(alerts[0]["event_ids"]) & set(alerts[1]["event_ids"])


def test_escalation_goes_through_suppression():
    engine, alerts = defaults()
    engine.process_events([login("failure", t=i * 0.5) for i in range(60)])
    brute = of_rule(alerts, "authn-brute-force")
    assert [a["severity"] for a in brute] == ["high", "critical"]
    assert brute[1]["escalates"] == brute[0]["id"] and brute[1]["count"] == 50


def test_a_more_severe_match_for_the_same_group_escalates_past_suppression():
    engine, alerts = defaults()
    events = [make_event("security.attack.detected", "failure", severity=s, ip="198.51.100.9", ts=T0 + i * SEC)
              for i, s in enumerate(["high", "high", "critical", "high", "critical"])]
    engine.process_events(events)
    assert [a["severity"] for a in of_rule(alerts, "security-attack-detected")] == ["high", "critical"]


# ------------------------------------------------------------------- distinct

def test_distinct_fires_on_twenty_accounts_failing_from_one_address():
    engine, alerts = defaults()
    engine.process_events([login("failure", user=f"user{i}", ip="192.0.2.50", t=i) for i in range(20)])
    [alert] = of_rule(alerts, "authn-credential-stuffing")
    assert alert["count"] == 20 and alert["group"] == "tenant=default,actor.ip=192.0.2.50"


def test_distinct_stays_silent_on_nineteen_accounts_or_one_account_many_times():
    engine, alerts = defaults()
    engine.process_events([login("failure", user=f"user{i}", ip="192.0.2.50", t=i) for i in range(19)])
    engine.process_events([login("failure", user="user0", ip="192.0.2.50", t=30 + i * 0.01) for i in range(50)])
    engine.process_events([login("failure", user=f"other{i}", ip="192.0.2.51", t=i * 20) for i in range(20)])  # 5 min window
    assert of_rule(alerts, "authn-credential-stuffing") == []


# ------------------------------------------------------------------- sequence

def test_sequence_fires_on_failures_then_a_success_for_the_same_user():
    engine, alerts = defaults()
    events = [login("failure", t=i) for i in range(3)] + [login("success", t=5)]
    engine.process_events(events)
    [alert] = of_rule(alerts, "authn-success-after-failures")
    assert alert["event_ids"] == [e["id"] for e in events]


@pytest.mark.parametrize("pattern", [
    [("failure", "alice", 0), ("failure", "alice", 1), ("success", "alice", 2)],          # too few failures
    [("failure", "alice", 0), ("failure", "alice", 1), ("failure", "alice", 2), ("success", "bob", 3)],  # other user
    [("failure", "alice", 0), ("failure", "alice", 1), ("failure", "alice", 2), ("success", "alice", 900)],  # too late
    [("success", "alice", 0), ("failure", "alice", 1), ("failure", "alice", 2), ("failure", "alice", 3)],  # wrong order
])
def test_sequence_stays_silent_on_near_misses(pattern):
    engine, alerts = defaults()
    engine.process_events([login(o, user=u, t=t) for o, u, t in pattern])
    assert of_rule(alerts, "authn-success-after-failures") == []


# ---------------------------------------------------------------------- trace

def trace_of(events, flags=("cross_platform", "mixed_outcomes"), seq=1):
    return {"tenant": "default", "trace_id": events[0]["trace_id"], "events": events, "seq": seq,
            "platforms": sorted({e["source"]["platform"] for e in events}), "flags": list(flags),
            "first_ts": events[0]["ts"], "last_ts": events[-1]["ts"]}


def test_trace_rule_fires_on_a_signature_accepted_on_one_platform_and_rejected_on_another():
    engine, alerts = defaults()
    tid = "4bf92f3577b34da6a3ce929d0e0e4736"
    events = [make_event("authn.signature.verify", "success", platform="python", trace_id=tid, ts=T0),
              make_event("authn.signature.verify", "failure", platform="node", trace_id=tid, ts=T0 + SEC)]
    engine.process_trace(trace_of(events))
    [alert] = of_rule(alerts, "security-split-signature-verdict")
    assert alert["trace_ids"] == [tid] and sorted(alert["event_ids"]) == sorted(e["id"] for e in events)
    engine.process_trace(trace_of(events))  # redelivered: same seq
    assert len(of_rule(alerts, "security-split-signature-verdict")) == 1


def test_trace_rule_stays_silent_when_both_verdicts_come_from_one_platform_or_agree():
    engine, alerts = defaults()
    tid = "4bf92f3577b34da6a3ce929d0e0e4737"
    same_platform = [make_event("authn.signature.verify", "success", platform="node", trace_id=tid, ts=T0),
                     make_event("authn.signature.verify", "failure", platform="node", trace_id=tid, ts=T0 + 1),
                     make_event("authn.login", "success", platform="python", trace_id=tid, ts=T0 + 2)]
    agree = [make_event("authn.signature.verify", "success", platform=p, trace_id=tid, ts=T0 + i)
             for i, p in enumerate(["python", "node"])]
    engine.process_trace(trace_of(same_platform, seq=1))
    engine.process_trace(trace_of(agree, flags=("cross_platform",), seq=2))
    assert of_rule(alerts, "security-split-signature-verdict") == []


def test_the_plugin_decodes_a_stored_trace_s_events_only_when_a_trace_rule_can_read_them(tmp_path, monkeypatch):
    """on_trace(stored): a trace no trace_where accepts is judged on its own fields; one that
    passes gets its events decoded, and the alert is the one the dict path raises."""
    from secbus.handlers.alerting import plugin as alerting_plugin

    from .helpers import PluginHandle

    decoded = []
    real = alerting_plugin._decode
    monkeypatch.setattr(alerting_plugin, "_decode", lambda raw: decoded.append(1) or real(raw))
    handler = alerting_plugin.AlertingHandler()
    app = PluginHandle("alerting", {}, tmp_path)
    handler.startup(app)
    try:
        tid = "4bf92f3577b34da6a3ce929d0e0e4738"
        split = [make_event("authn.signature.verify", "success", platform="python", trace_id=tid, ts=T0),
                 make_event("authn.signature.verify", "failure", platform="node", trace_id=tid, ts=T0 + SEC)]
        one_platform = [make_event("authn.signature.verify", o, platform="node", trace_id=tid, ts=T0 + i)
                        for i, o in enumerate(["success", "failure"])]
        handler.on_trace(stored_trace(trace_of(one_platform, flags=("mixed_outcomes",), seq=1), seq=1))
        assert decoded == [] and app.alerts == []  # not cross_platform: its events never decoded
        handler.on_trace(stored_trace(trace_of(split, seq=2), seq=2))
        assert decoded == [1]
        [alert] = [a for a in app.alerts if a["rule"] == "security-split-signature-verdict"]
        assert alert["trace_ids"] == [tid] and sorted(alert["event_ids"]) == sorted(e["id"] for e in split)
        handler.on_trace(stored_trace(trace_of(split, seq=2), seq=2))  # redelivered
        assert decoded == [1] and len(app.alerts) == 1
    finally:
        handler.shutdown()


# ---------------------------------------------------------------- state/bounds

def test_state_survives_a_snapshot_and_restore_without_refiring():
    engine, alerts = defaults()
    engine.process_events([login("failure", t=i) for i in range(4)])
    saved = engine.snapshot()
    again, alerts2 = defaults()
    again.restore(saved)
    again.process_events([login("failure", t=4)])
    assert len(of_rule(alerts2, "authn-brute-force")) == 1


def test_window_state_is_bounded_by_max_groups():
    alerts: list[dict] = []
    engine = Engine(load_rules(), alerts.append, max_groups=100)
    engine.process_events([login("failure", user=f"u{i}", ip=f"10.0.{i // 250}.{i % 250}", t=i * 0.001)
                           for i in range(1000)])
    assert all(len(groups) <= 100 for groups in engine.groups.values())
    assert engine.evicted_groups > 0
    engine.sweep(T0 + 10_000 * SEC)
    assert all(len(groups) == 0 for groups in engine.groups.values())


def test_alert_carries_every_documented_key():
    engine, alerts = defaults()
    engine.process_events([login("failure", t=i) for i in range(5)])
    [alert] = alerts
    for key in ("id", "rule", "severity", "group", "count", "suppressed", "first_ts", "last_ts",
                "event_ids", "trace_ids", "summary"):
        assert key in alert, key
    assert alert["summary"] == "5 failed logins for tenant=default,actor.user=alice within 60s"


def test_state_is_saved_incrementally_and_restores_through_the_ledger(tmp_path):
    from secbus.handlers.alerting.ledger import Ledger
    ledger = Ledger(tmp_path / "state.db")
    engine, alerts = defaults()
    engine.process_events([login("failure", user="ann", t=i) for i in range(3)])
    engine.process_events([login("failure", user="ben", t=i) for i in range(4)])
    header, upserts, removed = engine.changes()
    assert {key for rule, key, _ in upserts if rule == "authn-brute-force"} >= {"tenant=default,actor.user=ann",
                                                                           "tenant=default,actor.user=ben"}
    ledger.commit((header, upserts, removed))
    engine.process_events([login("failure", user="ben", t=5)])     # ben's 5th: an alert
    header, upserts, removed = engine.changes()
    assert all("ann" not in key for _, key, _ in upserts)           # only what changed is written
    ledger.commit((header, upserts, removed))
    ledger.close()
    again, alerts2 = defaults()
    again.restore(Ledger(tmp_path / "state.db").load_state())
    again.process_events([login("failure", user="ann", t=6), login("failure", user="ann", t=7),
                          login("failure", user="ben", t=8)])
    assert [a["group"] for a in of_rule(alerts2, "authn-brute-force")] == ["tenant=default,actor.user=ann"]
    assert again.last_event_seq == engine.last_event_seq + 3


def test_a_sequence_rule_only_tracks_events_that_could_be_one_of_its_steps():
    engine, alerts = defaults()
    engine.process_events([make_event("authz.permission.check", "failure", user="zoe", ts=T0)])
    assert "tenant=default,actor.user=zoe" not in engine.groups["authn-success-after-failures"]
    engine.process_events([login("failure", user="zoe", t=1)])
    assert "tenant=default,actor.user=zoe" in engine.groups["authn-success-after-failures"]


def test_the_rules_checker_accepts_a_good_file_and_names_the_mistake_in_a_bad_one(tmp_path):
    import subprocess
    import sys
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text('[[rule]]\nname = "mine"\nkind = "match"\nseverity = "low"\nwhere = { type = "authn.login" }\n')
    bad.write_text('[[rule]]\nname = "mine"\nkind = "match"\nseverity = "low"\nwhere = { type = { like = "a" } }\n')
    check = [sys.executable, "-m", "secbus.handlers.alerting.rules"]
    ok = subprocess.run(check + [str(good)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "mine" in ok.stdout and "ok: " in ok.stdout
    ko = subprocess.run(check + [str(bad)], capture_output=True, text=True, timeout=60)
    assert ko.returncode == 1 and "rule 'mine'" in ko.stderr and "unknown operator 'like'" in ko.stderr
