"""The correlator's promises: one trace per (tenant, trace_id), closed when idle,
bounded by eviction, flags that tell an analyst what kind of trace it was."""

import pytest

from secbus.correlation import Correlator

SECOND = 1_000_000_000
TRACE_A = "a" * 32
TRACE_B = "b" * 32


def event(seq, trace_id=TRACE_A, at=0, platform="python", service="api", outcome="success", tenant="default", ts=None):
    return {
        "seq": seq, "trace_id": trace_id, "tenant": tenant, "received_ns": at, "ts": at if ts is None else ts,
        "outcome": outcome, "type": "authn.login", "source": {"platform": platform, "service": service, "sdk": "t"},
    }


def test_events_sharing_a_trace_close_as_one_trace_after_idle():
    c = Correlator(trace_idle_ns=2 * SECOND)
    assert c.add(event(1, at=0, platform="node", service="web")) == []
    assert c.add(event(2, at=SECOND, platform="python", service="api", outcome="failure")) == []
    assert c.expire(2 * SECOND) == [], "closed before trace_idle had passed since the last event"
    [trace] = c.expire(3 * SECOND)
    assert [e["seq"] for e in trace["events"]] == [1, 2]
    assert trace["platforms"] == ["node", "python"]
    assert trace["services"] == ["api", "web"]
    assert trace["outcomes"] == {"failure": 1, "success": 1}
    assert trace["flags"] == ["cross_platform", "mixed_outcomes"]
    assert (trace["first_ts"], trace["last_ts"]) == (0, SECOND)
    assert c.open_count == 0


def test_events_are_in_time_order_even_when_logged_out_of_order():
    c = Correlator(trace_idle_ns=SECOND)
    c.add(event(1, at=10, ts=500))
    c.add(event(2, at=11, ts=100))
    [trace] = c.expire(10 * SECOND)
    assert [e["seq"] for e in trace["events"]] == [2, 1]
    assert (trace["first_ts"], trace["last_ts"]) == (100, 500)


def test_same_trace_id_in_two_tenants_is_two_traces():
    c = Correlator(trace_idle_ns=SECOND)
    c.add(event(1, tenant="acme"))
    c.add(event(2, tenant="globex"))
    closed = c.expire(5 * SECOND)
    assert sorted(t["tenant"] for t in closed) == ["acme", "globex"]
    assert all(t["event_count"] == 1 for t in closed)


def test_single_platform_single_outcome_trace_has_no_flags():
    c = Correlator(trace_idle_ns=SECOND)
    c.add(event(1))
    c.add(event(2))
    [trace] = c.expire(5 * SECOND)
    assert trace["flags"] == []


def test_platforms_and_services_are_listed_once_each_sorted_however_often_they_repeat():
    """A trace keeps one platform or service as a value and a set from the second on."""
    c = Correlator(trace_idle_ns=SECOND)
    for seq, (platform, service) in enumerate([("python", "api"), ("python", "api"), ("node", "web"),
                                                ("python", "web"), ("go", "api")], 1):
        c.add(event(seq, platform=platform, service=service))
    for seq in (6, 7):
        c.add(event(seq, trace_id=TRACE_B, platform="node", service="web"))
    by_id = {t["trace_id"]: t for t in c.expire(5 * SECOND)}
    assert by_id[TRACE_A]["platforms"] == ["go", "node", "python"] and by_id[TRACE_A]["services"] == ["api", "web"]
    assert "cross_platform" in by_id[TRACE_A]["flags"]
    assert by_id[TRACE_B]["platforms"] == ["node"] and by_id[TRACE_B]["services"] == ["web"]
    assert by_id[TRACE_B]["flags"] == []


def test_max_open_traces_evicts_the_least_recently_active_and_flags_it():
    c = Correlator(trace_idle_ns=100 * SECOND, max_open_traces=2)
    c.add(event(1, trace_id=TRACE_A, at=1))
    c.add(event(2, trace_id=TRACE_B, at=2))
    c.add(event(3, trace_id=TRACE_A, at=3))  # A is now the most recently active
    [evicted] = c.add(event(4, trace_id="c" * 32, at=4))
    assert evicted["trace_id"] == TRACE_B
    assert "evicted" in evicted["flags"]
    assert c.open_count == 2
    assert c.evicted == 1


def test_event_after_its_trace_closed_opens_a_late_trace():
    c = Correlator(trace_idle_ns=SECOND)
    c.add(event(1, at=0))
    c.expire(2 * SECOND)
    c.add(event(2, at=3 * SECOND))
    [late] = c.expire(10 * SECOND)
    assert late["flags"] == ["late"]
    assert [e["seq"] for e in late["events"]] == [2]
    assert c.late == 1


def test_a_huge_trace_keeps_a_bounded_number_of_events_and_says_so():
    c = Correlator(trace_idle_ns=SECOND, max_trace_events=3)
    for seq in range(10):
        c.add(event(seq, at=seq))
    [trace] = c.expire(10 * SECOND)
    assert len(trace["events"]) == 3
    assert trace["event_count"] == 10
    assert "truncated" in trace["flags"]


def test_oldest_open_seq_is_where_a_restart_must_resume():
    c = Correlator(trace_idle_ns=SECOND)
    assert c.oldest_open_seq() is None
    c.add(event(5, trace_id=TRACE_A, at=0))
    c.add(event(7, trace_id=TRACE_B, at=2 * SECOND))
    assert c.oldest_open_seq() == 5
    c.expire(int(1.5 * SECOND))
    assert c.oldest_open_seq() == 7


def test_close_all_closes_everything():
    c = Correlator(trace_idle_ns=SECOND)
    c.add(event(1, trace_id=TRACE_A))
    c.add(event(2, trace_id=TRACE_B))
    assert len(c.close_all()) == 2
    assert c.open_count == 0


@pytest.mark.parametrize("kwargs, field", [
    ({"trace_idle_ns": 0}, "trace_idle"),
    ({"trace_idle_ns": 1, "max_open_traces": 0}, "max_open_traces"),
    ({"trace_idle_ns": 1, "max_trace_events": 0}, "max_trace_events"),
])
def test_bad_settings_are_refused_naming_the_setting(kwargs, field):
    with pytest.raises(ValueError, match=field):
        Correlator(**kwargs)


def test_shift_idle_keeps_traces_open_across_a_broker_downtime():
    c = Correlator(trace_idle_ns=SECOND)
    c.add(event(1, at=0))
    c.shift_idle(10 * SECOND, now_ns=10 * SECOND)
    assert c.expire(10 * SECOND) == [], "the downtime counted as idleness"
    assert len(c.expire(11 * SECOND)) == 1


def test_open_traces_hold_events_compactly_and_close_with_them_intact():
    import sys

    c = Correlator(trace_idle_ns=SECOND, max_trace_events=50)
    originals = [dict(event(i, at=i, platform="python"), attributes={"user": "u" * 40, "n": i}) for i in range(1, 101)]
    for e in originals:
        c.add(e)
    [open_trace] = c._open.values()
    held = sum(sys.getsizeof(raw) for raw in open_trace.events)
    assert len(open_trace.events) == 50, "max_trace_events bounds what an open trace holds"
    assert held < 50 * 400, f"an open trace holds {held} B for 50 small events: not compact"
    assert not any(isinstance(raw, dict) for raw in open_trace.events), "open traces must not keep event dicts alive"
    [trace] = c.close_all()
    assert trace["events"] == originals[:50]
    assert trace["event_count"] == 100 and "truncated" in trace["flags"]
