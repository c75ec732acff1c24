"""``secbus status``: a real broker's /healthz judged for an operator or a monitoring check.

Exit 0 when nothing needs someone, 1 when something does (a handler failed, retrying, skipped or
too far behind; no broker answering), 2 on a bad option. The judgment itself is also tested on
/healthz documents where a real broker cannot be put in that state within a test (a backlog near
its bound, a correlator restarting)."""

from __future__ import annotations

import json
import os

from secbus.health import notes, problems
from support.broker import run_secbus, wait_until
from support.events import make_event

from .test_broker_handlers import recorder_config


def status(*args: str):
    return run_secbus("status", *args)


def test_a_healthy_broker_found_through_its_data_dir(broker):
    broker.client().publish([make_event()])
    out = status("--data-dir", str(broker.data_dir))
    assert out.returncode == 0, out.stderr
    assert f"at http://{broker.http}/healthz: ok" in out.stdout
    assert broker.ingest in out.stdout and str(broker.data_dir.resolve()) in out.stdout
    for name in broker.healthz()["handlers"]:
        assert f"\n  {name} " in out.stdout
    assert out.stdout.rstrip().endswith("healthy")

    doc = json.loads(status("--http", broker.http, "--json").stdout)
    assert doc["problems"] == [] and doc["pid"] == broker.proc.pid and doc["ingest"]["events_accepted"] == 1
    fs = os.statvfs(broker.data_dir)
    assert doc["log"]["disk"]["size_bytes"] == fs.f_blocks * fs.f_frsize
    assert abs(doc["log"]["disk"]["free_bytes"] - fs.f_bavail * fs.f_frsize) < 1024**3  # other tests write meanwhile
    assert " free of " in out.stdout
    assert broker.get("/healthz?strict")[0] == 200 and broker.healthz()["problems"] == []
    # an http_proxy in the environment (common on corporate hosts) is not asked for the broker
    proxied = run_secbus("status", "--http", broker.http, env={"http_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"})
    assert proxied.returncode == 0, proxied.stderr


def test_a_handler_failing_every_batch_is_a_problem_naming_it_and_its_error(broker_factory, recorder_installed, recording):
    b = broker_factory(config=recorder_config(recording, fail_every=1), handlers=["recorder"])
    b.client().publish([make_event()])
    wait_until(lambda: b.healthz()["handlers"]["recorder"]["failures"] >= 2, message="the recorder failing")
    out = status("--http", b.http)
    assert out.returncode == 1
    assert "1 problem:" in out.stdout and "NOT HEALTHY" in out.stdout
    assert "handler recorder is retrying after" in out.stdout
    assert "RuntimeError" in out.stdout and "failing call" in out.stdout
    # /healthz says the same to a monitor that reads only the status code: 503 with ?strict
    code, body = b.get("/healthz?strict")
    assert code == 503 and any(p.startswith("handler recorder is retrying") for p in json.loads(body)["problems"])
    assert b.get("/healthz")[0] == 200
    b.kill()  # not what is under test: a stop would wait out the drain deadline


def test_a_handler_that_is_not_installed_is_a_problem(broker_factory, recorder_installed):
    b = broker_factory(handlers=["typo"])  # installed, but implements a hook that does not exist
    out = status("--http", b.http)
    assert out.returncode == 1
    assert "handler typo was skipped" in out.stdout


def test_a_handler_behind_by_more_than_max_lag_is_a_problem(broker_factory, recorder_installed, recording):
    b = broker_factory(config=recorder_config(recording, sleep_s=5.0, batch_size=10), handlers=["recorder"])
    b.client().publish([make_event() for _ in range(200)])
    wait_until(lambda: b.healthz()["handlers"]["recorder"]["lag"]["events"] >= 150, message="the recorder behind")
    behind = status("--http", b.http, "--max-lag", "100")
    assert behind.returncode == 1
    assert "handler recorder is" in behind.stdout and "events behind (limit 100)" in behind.stdout
    assert status("--http", b.http).returncode == 0  # the default limit, 100,000, is far
    b.kill()  # not what is under test: a stop would wait out the drain deadline


def test_no_broker_answering_is_a_problem_and_a_killed_broker_is_named(broker_factory, tmp_path):
    out = status("--data-dir", str(tmp_path / "nothing-here"), "--http", "127.0.0.1:9")
    assert out.returncode == 1
    assert "no broker answers at http://127.0.0.1:9/healthz" in out.stderr

    b = broker_factory()
    pid = b.proc.pid
    b.kill()  # broker.json stays behind, as after a crash
    out = wait_until(lambda: (r := status("--data-dir", str(b.data_dir))).returncode == 1 and "no broker answers" in r.stderr and r,
                     message="the consumer process gone too")
    assert f"names pid {pid}, which is not running" in out.stderr


def test_healthz_names_a_bad_max_lag(broker):
    code, body = broker.get("/healthz?strict&max_lag=lots")
    assert code == 400 and json.loads(body) == {"error": "max_lag: expected a whole number of records, got 'lots'"}
    assert broker.get("/healthz?strict&max_lag=0")[0] == 200  # nothing behind on an idle broker


def test_bad_options_are_usage_errors():
    bad_lag = status("--max-lag", "-1")
    assert bad_lag.returncode == 2 and "--max-lag: expected 0 or more records, got -1" in bad_lag.stderr
    bad_http = status("--http", "localhost")
    assert bad_http.returncode == 2 and "--http: expected HOST:PORT, got 'localhost'" in bad_http.stderr


HEALTHY = {
    "status": "ok",
    "ingest": {"backlog": 10, "max_backlog": 1000},
    "handlers": {"audit": {"state": "running", "lag": {"events": 3}, "failures": 0, "skipped": 0}},
    "correlator": {"state": "running", "lag": {"events": 0}, "process": {"restarts": 0}},
    "consumers": {"restarts": 0},
    "rejects": {},
    "feed": {"skipped": 0},
    "security": {},
}


def doc_with(**parts) -> dict:
    return {**HEALTHY, **parts}


def test_judgment_of_states_a_broker_reaches_only_under_load_or_after_a_crash():
    assert problems(HEALTHY) == [] and notes(HEALTHY) == []
    near_bound = problems(doc_with(ingest={"backlog": 800, "max_backlog": 1000}))
    assert len(near_bound) == 1 and "ingest backlog is 800 of max_backlog 1,000" in near_bound[0]
    assert "correlator is restarting" in problems(doc_with(correlator={"state": "restarting", "lag": {}}))[0]
    assert "correlator is 500 events behind (limit 100)" in problems(doc_with(correlator={"state": "running", "lag": {"events": 500}}), max_lag=100)[0]
    assert problems(doc_with(status="stopping")) == ["broker status is 'stopping': it is shutting down"]
    gib = 1024**3
    nearly_full = problems(doc_with(log={"disk": {"free_bytes": 3 * gib, "size_bytes": 100 * gib}}))
    assert nearly_full == ["the data dir's file system is 97% full (3.0 GiB free of 100.0 GiB): when it fills, commits "
                           "fail and publishers are turned away; free space or lower log.retention_max_bytes"]
    assert problems(doc_with(log={"disk": {"free_bytes": 6 * gib, "size_bytes": 100 * gib}})) == []


def test_counters_that_never_go_down_are_notes_not_problems():
    past = doc_with(
        consumers={"restarts": 2, "last_exit": "signal 9"},
        handlers={"audit": {"state": "running", "lag": {"events": 0}, "failures": 3, "last_error": "OSError: disk", "skipped": 0,
                            "log_errors": 7}},
        rejects={"invalid": 4, "malformed": 1, "internal": 0},
        ingest={"backlog": 0, "max_backlog": 1000, "handshakes_failed": 2},
    )
    assert problems(past) == []
    text = "\n".join(notes(past))
    assert "started again 2 times (last exit: signal 9)" in text
    assert "handler audit failed 3 times and got past it (last: OSError: disk)" in text
    assert "handler audit: reading the log or storing its cursor failed 7 times" in text
    assert "rejected: 4 invalid, 1 malformed" in text
    assert "2 handshakes failed at ingest" in text
