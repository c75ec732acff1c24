"""The ``secbus`` command line against a real broker: emit, ping, tail, trace, events, serve errors."""

from __future__ import annotations

import datetime
import json
import subprocess
import time

import pytest

from support.broker import run_secbus as secbus, secbus_command, wait_until
from support.events import make_event

FAST = {"correlation": {"trace_idle_ms": 200, "expire_interval_ms": 50}}


def test_emit_prints_the_event_id_after_the_ack_and_the_event_is_stored(broker_factory):
    b = broker_factory(handlers=[])
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    r = secbus("emit", "authn.login", "--outcome", "failure", "--attr", "method=password", "--attr", "tries=3",
               "--traceparent", tp, "--actor-user", "alice", "--actor-ip", "203.0.113.7", "--resource", "app/login",
               "--endpoint", b.ingest)
    assert r.returncode == 0, r.stderr
    (stored,) = b.events()
    assert r.stdout.strip() == stored["id"]
    assert stored["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert stored["attrs"] == {"method": "password", "tries": 3}
    assert stored["outcome"] == "failure" and stored["actor"] == {"user": "alice", "ip": "203.0.113.7"}
    assert stored["resource"] == "app/login"


def test_emit_with_no_broker_fails_clearly_within_its_timeout():
    r = secbus("emit", "authn.login", "--endpoint", "tcp://127.0.0.1:9", "--timeout", "0.5")
    assert r.returncode == 1
    assert "no answer from a broker at tcp://127.0.0.1:9" in r.stderr


def test_emit_with_an_invalid_type_names_the_field_and_sends_nothing():
    r = secbus("emit", "Login", "--endpoint", "tcp://127.0.0.1:9")
    assert r.returncode == 2 and "type:" in r.stderr and "'Login'" in r.stderr


def test_ping_prints_the_round_trip(broker_factory):
    b = broker_factory(handlers=[])
    r = secbus("ping", "--endpoint", b.ingest)
    assert r.returncode == 0 and r.stdout.startswith(f"PONG from {b.ingest}: protocol v1")


def test_tail_prints_matching_feed_messages_as_json(broker_factory):
    b = broker_factory(handlers=[])
    proc = subprocess.Popen(secbus_command() + ["tail", "--topic", "event.authz.", "--json", "--count", "1", "--endpoint", b.feed],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: b.healthz()["feed"]["subscriptions"] >= 1, message="tail subscribed")
        event = make_event("authz.check")
        with b.client() as c:
            c.publish([make_event("authn.login"), event])
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    message = json.loads(out.strip())
    assert message["topic"] == "event.authz.check" and message["body"]["id"] == event["id"]


def test_tail_with_field_options_follows_one_actor_events_and_traces(broker_factory):
    b = broker_factory(config=FAST, handlers=[])
    proc = subprocess.Popen(secbus_command() + ["tail", "--actor-user", "alice", "--json", "--count", "2", "--endpoint", b.feed],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: b.healthz()["feed"]["subscriptions"] >= 1, message="tail subscribed")
        bob, alice = make_event("authn.login", actor={"user": "bob"}), make_event("authz.check", actor={"user": "alice"})
        with b.client() as c:
            c.publish([bob, alice])
        out, err = proc.communicate(timeout=20)  # the two messages about alice: her event, then her trace
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    messages = [json.loads(line) for line in out.splitlines()]
    assert [m["topic"] for m in messages] == ["event.authz.check", "trace"]
    assert messages[0]["body"]["id"] == alice["id"] and messages[1]["body"]["trace_id"] == alice["trace_id"]


def test_tail_with_field_options_shows_the_alerts_whose_group_names_every_field():
    from secbus.commands.tail import concerns
    from secbus.log.fields import FieldMatch

    match = FieldMatch({"actor.user": "alice"})
    assert concerns(match, "alert.high", {"group": "tenant=default,actor.user=alice"})
    assert not concerns(match, "alert.high", {"group": "tenant=default,actor.user=alice2"})
    assert not concerns(match, "alert.critical", {"group": "tenant=default,actor.ip=203.0.113.7"})
    assert concerns(FieldMatch({}), "alert.info", {"group": ""})  # no field options: everything


def test_tail_with_a_bad_option_names_it_and_exits_2():
    r = secbus("tail", "--attr", "no-equals-sign")
    assert r.returncode == 2 and "--attr: expected KEY=VALUE" in r.stderr
    r = secbus("tail", "--count", "-5")
    assert r.returncode == 2 and "--count: expected 0 (run until Ctrl-C) or more, got -5" in r.stderr


def test_trace_prints_every_event_of_a_trace_in_time_order_with_platforms(broker_factory):
    b = broker_factory(config=FAST, handlers=[])
    first = make_event("authn.token.verify", platform="node", service="api")
    second = make_event("authz.check", platform="python", service="billing", trace_id=first["trace_id"], ts=first["ts"] + 5)
    with b.client() as c:
        c.publish([second, first])  # arrival order differs from time order
    # still open: found by scanning what the correlator has not closed
    r = secbus("trace", first["trace_id"], "--data-dir", str(b.data_dir))
    assert r.returncode == 0, r.stderr
    assert "platforms node, python" in r.stdout
    lines = r.stdout.splitlines()[1:]
    assert "authn.token.verify" in lines[0] and "authz.check" in lines[1]
    wait_until(lambda: b.traces(), message="the trace closed")
    r = secbus("trace", first["trace_id"], "--data-dir", str(b.data_dir), "--json")
    assert [json.loads(line)["id"] for line in r.stdout.splitlines()] == [first["id"], second["id"]]


def test_trace_of_an_unknown_trace_exits_non_zero(broker_factory):
    b = broker_factory(handlers=[])
    r = secbus("trace", "0" * 31 + "1", "--data-dir", str(b.data_dir))
    assert r.returncode == 1 and "no stored events" in r.stderr
    r = secbus("trace", "XYZ", "--data-dir", str(b.data_dir))
    assert r.returncode == 2 and "trace_id" in r.stderr


def test_events_lists_stored_events_by_type_prefix_tenant_and_time_range(broker_factory):
    b = broker_factory(handlers=[])
    now = time.time_ns()
    old = make_event("authn.login", ts=now - 3 * 3600 * 10**9)
    failed = make_event("authn.login", ts=now - 60 * 10**9, outcome="failure", actor={"user": "alice"})
    token = make_event("authn.token.verify", ts=now - 30 * 10**9, attrs={"alg": "RS256", "cached": True})
    check = make_event("authz.check", ts=now - 10 * 10**9, service="billing", actor={"user": "bob", "ip": "10.0.0.7"})
    with b.client() as c:
        c.publish([old, failed, token, check])

    def ids(*args) -> list[str]:
        r = secbus("events", "--data-dir", str(b.data_dir), "--json", *args)
        assert r.returncode == (0 if r.stdout else 1), r.stderr  # 1: nothing matched
        return [json.loads(line)["id"] for line in r.stdout.splitlines()]

    assert ids() == [old["id"], failed["id"], token["id"], check["id"]]
    assert ids("--type", "authn.") == [old["id"], failed["id"], token["id"]]
    assert ids("--type", "authn.login", "--since", "1h") == [failed["id"]]
    assert ids("--since", "2h", "--until", "20s") == [failed["id"], token["id"]]
    until = datetime.datetime.fromtimestamp((now - 45 * 10**9) / 1e9, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ids("--since", "1d", "--until", until) == [old["id"], failed["id"]]
    assert ids("--tenant", "default", "--type", "authz.") == [check["id"]]
    assert ids("--outcome", "failure") == [failed["id"]]
    assert ids("--outcome", "success", "--since", "1h") == [token["id"], check["id"]]
    assert ids("--newest", "--limit", "2") == [token["id"], check["id"]]  # the last two, in log order
    assert ids("--newest", "--type", "authn.", "--limit", "1") == [token["id"]]
    assert ids("--actor-user", "alice") == [failed["id"]]
    assert ids("--actor-ip", "10.0.0.7", "--service", "billing") == [check["id"]]
    assert ids("--service", "tests", "--type", "authz.") == []
    assert ids("--attr", "alg=RS256", "--attr", "cached=true") == [token["id"]]
    assert ids("--attr", "cached=false") == []

    r = secbus("events", "--data-dir", str(b.data_dir), "--type", "authn.", "--limit", "2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and "more match" in r.stderr
    assert "default  python/tests  authn.login  failure" in lines[1] and "user=alice" in lines[1]
    assert f"trace={failed['trace_id']}" in lines[1]
    r = secbus("events", "--data-dir", str(b.data_dir), "--tenant", "other")
    assert r.returncode == 1 and "no stored events match" in r.stderr


def test_events_all_pages_through_every_match_and_after_continues_a_cut_listing(broker_factory):
    b = broker_factory(handlers=[])
    events = [make_event("authn.login", outcome="failure" if i % 2 else "success") for i in range(2500)]
    with b.client() as c:
        for seq, start in enumerate(range(0, 2500, 500), 1):
            c.publish(events[start:start + 500], seq=seq)

    def listing(*args):
        r = secbus("events", "--data-dir", str(b.data_dir), "--json", *args)
        return [json.loads(line) for line in r.stdout.splitlines()], r

    everything, r = listing("--limit", "all")  # more than one page of 1000
    assert [e["id"] for e in everything] == [e["id"] for e in events] and r.stderr == ""
    failures, _ = listing("--limit", "all", "--outcome", "failure")
    assert [e["id"] for e in failures] == [e["id"] for e in events[1::2]]

    first, r = listing("--limit", "1200")
    last_seq = first[-1]["seq"]
    assert len(first) == 1200 and f"continue with --after {last_seq}" in r.stderr
    rest, r = listing("--after", str(last_seq), "--limit", "all")
    assert [e["id"] for e in first + rest] == [e["id"] for e in events] and r.returncode == 0
    exact, r = listing("--limit", "2500")
    assert len(exact) == 2500 and "more match" not in r.stderr
    none, r = listing("--after", str(everything[-1]["seq"]))
    assert none == [] and r.returncode == 1 and "no stored events match" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["--since", "yesterday"], "--since: expected a time ago such as 15m"),
    (["--until", "5x"], "--until: expected a time ago"),
    (["--since", "1h", "--until", "2h"], "is not before --until"),
    (["--type", "Authn."], "--type: expected a lowercase type or prefix"),
    (["--limit", "0"], "--limit: expected a positive integer or all, got '0'"),
    (["--after", "x"], "--after: expected a seq (a whole number, from an earlier listing), got 'x'"),
    (["--after", "5", "--newest"], "--after and --newest do not go together"),
    (["--outcome", "failed"], "--outcome: expected one of success, failure, error, unknown, got 'failed'"),
    (["--severity", "urgent"], "--severity: expected one of info, low, medium, high, critical, got 'urgent'"),
    (["--attr", "alg"], "--attr: expected KEY=VALUE"),
    (["--attr", "bad key=1"], "got 'bad key=1'"),
])
def test_events_with_a_bad_option_names_it_and_exits_2(tmp_path, args, message):
    r = secbus("events", "--data-dir", str(tmp_path), *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_events_without_a_log_in_the_data_dir_exits_2(tmp_path):
    r = secbus("events", "--data-dir", str(tmp_path / "nothing"))
    assert r.returncode == 2 and "no event log in" in r.stderr


def test_output_into_a_pipe_that_closes_early_ends_quietly(tmp_path):
    """`secbus ... | head` is how analysts read long output: no traceback when the reader goes away."""
    command = " ".join(secbus_command() + ["config", "show", "--sources", "--data-dir", str(tmp_path)])
    r = subprocess.run(["bash", "-c", f"{command} | true; echo ${{PIPESTATUS[0]}}"], capture_output=True, text=True, timeout=30)
    assert "Traceback" not in r.stderr and "BrokenPipeError" not in r.stderr, r.stderr
    assert r.stdout.strip() in ("0", "1")  # 0 when the output fit in the pipe before the reader left


@pytest.mark.parametrize("command", [["emit", "authn.login"], ["ping"], ["tail", "--count", "1"]])
def test_an_endpoint_zeromq_cannot_use_is_named_and_exits_2(command):
    r = secbus(*command, "--endpoint", "localhost:7878")  # the scheme is missing
    assert r.returncode == 2, r.stderr
    assert "--endpoint: cannot use 'localhost:7878' (Invalid argument); expected tcp://HOST:PORT" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("command,value", [(["ping"], "-1"), (["emit", "authn.login"], "0"), (["status"], "nan"),
                                           (["ping"], "soon")])
def test_a_timeout_that_is_not_a_positive_number_is_named_instead_of_waiting_for_ever(command, value):
    r = secbus(*command, "--timeout", value, timeout=10)  # -1 used to mean "wait for ever" to ZeroMQ's poll
    assert r.returncode == 2
    assert f"argument --timeout: expected a number of seconds above 0, got '{value}'" in r.stderr


def test_a_damaged_event_log_is_named_by_every_command_and_serve_refuses_it(tmp_path):
    (tmp_path / "events.db").write_bytes(b"not a database, not even close" * 100)
    (tmp_path / "state.db").write_bytes(b"not a database, not even close" * 100)
    for command in (["events"], ["alerts"], ["trace", "4bf92f3577b34da6a3ce929d0e0e4736"]):
        r = secbus(*command, "--data-dir", str(tmp_path))
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert f"the event log in {tmp_path} cannot be used" in r.stderr
    r = secbus("serve", "--data-dir", str(tmp_path), "--ingest", "tcp://127.0.0.1:0", "--feed", "tcp://127.0.0.1:0",
               "--http", "127.0.0.1:0")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"the event log in {tmp_path} cannot be used" in r.stderr


def test_serve_with_a_bad_config_value_names_the_key_and_exits_2(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[log]\ndurability = "sometimes"\n')
    r = secbus("serve", "--config", str(config), "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2 and "log.durability" in r.stderr and "'sometimes'" in r.stderr
    config.write_text('[ingest]\nmax_backlogg = 3\n')
    r = secbus("serve", "--config", str(config))
    assert r.returncode == 2 and "ingest.max_backlogg: unknown option" in r.stderr
    config.write_text('[handlers]\nniceness = 25\n')
    r = secbus("serve", "--config", str(config))
    assert r.returncode == 2 and "handlers.niceness: expected 0 to 19, got 25" in r.stderr
    r = secbus("serve", "--ingest", "localhost:7878", "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2 and "ingest.endpoint: expected tcp://HOST:PORT or ipc://PATH, got 'localhost:7878'" in r.stderr
    config.write_text('[http]\ntoken = ["s3cret"]\n')  # a token of the wrong type is still a token
    r = secbus("serve", "--config", str(config))
    assert r.returncode == 2 and "http.token: expected str, got ['[masked]']" in r.stderr and "s3cret" not in r.stderr


def test_a_feed_address_in_use_is_refused_by_the_consumer_process_and_nothing_is_left_running(broker_factory, tmp_path):
    b = broker_factory(handlers=[])
    r = secbus("serve", "--data-dir", str(tmp_path / "other"), "--ingest", "tcp://127.0.0.1:0", "--feed", b.feed, "--http", "127.0.0.1:0")
    assert r.returncode == 2 and "cannot listen" in r.stderr and b.feed in r.stderr
    r = secbus("serve", "--data-dir", str(tmp_path / "other"), "--ingest", "tcp://127.0.0.1:0", "--feed", "tcp://127.0.0.1:0", "--http", b.http)
    assert r.returncode == 2 and "cannot listen" in r.stderr and b.http in r.stderr


def test_second_broker_on_the_same_data_dir_is_refused(broker_factory):
    b = broker_factory(handlers=[])
    r = secbus("serve", "--data-dir", str(b.data_dir), "--ingest", "tcp://127.0.0.1:0", "--feed", "tcp://127.0.0.1:0", "--http", "127.0.0.1:0")
    assert r.returncode == 2 and "in use by another broker" in r.stderr


def test_env_overrides_file_and_flags_override_env(tmp_path):
    from secbus.config import load

    config = tmp_path / "c.toml"
    config.write_text('data_dir = "/from/file"\n[ingest]\nmax_backlog = 5\n[handlers]\nenabled = ["audit"]\n')
    env = {"SECBUS_DATA_DIR": "/from/env", "SECBUS_INGEST_MAX_BACKLOG": "7", "SECBUS_HANDLERS_ENABLED": "metrics, audit"}
    c = load(config, environ=env, flags={"data_dir": "/from/flag"})
    assert c["data_dir"] == "/from/flag"
    assert c["ingest"]["max_backlog"] == 7
    assert c["handlers"]["enabled"] == ["metrics", "audit"]
    assert load(None, environ={})["data_dir"] == "./secbus-data"
