"""CURVE end to end against a real broker process: who may publish, what gets stamped, what is refused."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from secbus_sdk import wire

from support.broker import BrokerProcess, secbus_command, start_broker, wait_until
from support.events import make_event

from .helpers import KeyPair
from .secure_broker import client_entry, start_secure_broker


@pytest.fixture
def keys(tmp_path):
    d = tmp_path / "keys"
    return {n: KeyPair(d, n) for n in ("broker", "web", "payments", "soc", "stranger")}


@pytest.fixture
def secure(tmp_path, keys):
    clients = [
        client_entry(keys["web"], "acme", ["authn.", "authz.check"]),
        client_entry(keys["payments"], "globex", ["*"]),
        client_entry(keys["soc"], "acme", ["*"], admin=True),
    ]
    broker = start_secure_broker(tmp_path, keys["broker"], clients, probe=keys["soc"])
    yield broker
    broker.stop()


def test_allowed_key_publishes_and_its_events_carry_its_name_and_tenant(secure, keys):
    events = [make_event("authn.login"), make_event("authz.check")]
    with secure.client_for(keys["web"]) as client:
        ack = client.publish(events)
    assert (ack["accepted"], ack["rejected"]) == (2, [])
    stored = {e["id"]: e for e in secure.events()}
    for e in events:
        assert (stored[e["id"]]["publisher"], stored[e["id"]]["tenant"]) == ("web", "acme")


def test_spoofed_tenant_and_publisher_in_the_payload_are_replaced(secure, keys):
    forged = make_event("authn.login", tenant="globex", publisher="payments")
    with secure.client_for(keys["web"]) as client:
        assert client.publish([forged])["accepted"] == 1
    stored = [e for e in secure.events() if e["id"] == forged["id"]][0]
    assert (stored["publisher"], stored["tenant"]) == ("web", "acme")


def test_type_outside_the_keys_prefixes_is_rejected_per_event_with_unauthorized(secure, keys):
    ok, forbidden, near_miss = make_event("authn.login"), make_event("config.change"), make_event("authz.checks")
    with secure.client_for(keys["web"]) as client:
        ack = client.publish([ok, forbidden, near_miss])
    assert ack["accepted"] == 1
    assert [(i, code) for i, code, _ in ack["rejected"]] == [(1, "unauthorized"), (2, "unauthorized")]
    assert "'web' may not publish 'config.change'" in ack["rejected"][0][2]
    assert {e["id"] for e in secure.events()} >= {ok["id"]}
    assert not {forbidden["id"], near_miss["id"]} & {e["id"] for e in secure.events()}
    assert secure.healthz()["rejects"].get("unauthorized", 0) >= 2


def test_unknown_key_gets_no_ack_and_the_attempt_is_counted_and_logged(secure, keys):
    event = make_event("authn.login")
    with secure.client_for(keys["stranger"], timeout=1.5) as client:
        with pytest.raises(TimeoutError):
            client.publish([event])
    sec = wait_until(lambda: (s := secure.healthz()["security"])["handshakes_denied"] >= 1 and s, message="the denied handshake in /healthz")
    assert sec["last_denied"]["public_key"] == keys["stranger"].public_text
    assert event["id"] not in {e["id"] for e in secure.events()}
    wait_until(lambda: "not in the allow-list" in secure.log_text(), message="the denial in the broker log")


def test_client_without_curve_gets_nothing_from_a_curve_broker_and_is_counted(secure, keys):
    with secure.client_for(None, timeout=1.5) as client:
        with pytest.raises(TimeoutError):
            client.ping()
    wait_until(lambda: secure.healthz()["ingest"]["handshakes_failed"] >= 1, message="the failed handshake in /healthz")


def test_healthz_shows_security_state_without_any_secret(secure, keys):
    text = urllib.request.urlopen(f"http://{secure.http}/healthz", timeout=10).read().decode()
    assert '"curve": true' in text and '"clients": 3' in text
    log = secure.log_text(tail=100_000)
    for pair in keys.values():
        assert pair.secret_text not in text and pair.secret_text not in log


def test_per_publisher_rate_limit_answers_overloaded_with_an_honest_retry_after(tmp_path, keys):
    clients = [client_entry(keys["web"], "acme"), client_entry(keys["payments"], "globex")]
    broker = start_secure_broker(tmp_path, keys["broker"], clients, probe=keys["payments"], config={"ingest": {"rate_per_publisher": 200, "rate_burst": 100}})
    try:
        with broker.client_for(keys["web"]) as web, broker.client_for(keys["payments"]) as payments:
            assert web.publish([make_event() for _ in range(100)], seq=1)["accepted"] == 100
            command, body = web.request(wire.PUB, {"seq": 2, "events": [make_event() for _ in range(60)]})
            assert command == wire.ERR and body["code"] == "overloaded" and body["seq"] == 2
            assert 0 < body["retry_after_ms"] <= 300
            assert "'web' is over its rate" in body["message"]
            # another publisher has its own bucket
            assert payments.publish([make_event() for _ in range(50)], seq=1)["accepted"] == 50
            time.sleep(body["retry_after_ms"] / 1000)  # the behaviour under test: waiting that long is enough
            assert web.publish([make_event() for _ in range(60)], seq=3)["accepted"] == 60
        assert broker.healthz()["security"]["rate_limited"] >= 1
    finally:
        broker.stop()


def _serve_and_wait_exit(tmp_path, config: dict) -> tuple[int, str]:
    proc = BrokerProcess(tmp_path / f"refused-{time.monotonic_ns()}", config=config, handlers=[])
    proc.start()
    try:
        code = proc.proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"the broker started instead of refusing:\n{proc.log_text()}")
    proc._close_log()
    return code, proc.log_text()


@pytest.mark.parametrize("what, config", [
    ("ingest", {"ingest": {"endpoint": "tcp://0.0.0.0:0"}}),
    ("feed", {"feed": {"endpoint": "tcp://*:0"}}),
    ("http", {"http": {"address": "0.0.0.0:0"}}),
])
def test_insecure_non_loopback_bind_is_refused_at_start(tmp_path, what, config):
    code, log = _serve_and_wait_exit(tmp_path, config)
    assert code == 2
    assert f"refusing to start: {what}: refusing to listen on" in log and "allow_insecure = true" in log


def test_allow_insecure_binds_non_loopback_and_says_so(tmp_path):
    broker = start_broker(tmp_path, config={"ingest": {"endpoint": "tcp://0.0.0.0:0"}, "auth": {"allow_insecure": True}}, handlers=[])
    try:
        assert "WARNING: ingest tcp://0.0.0.0:0 listens on a non-loopback address without CURVE" in broker.log_text()
        assert "grasslands" in broker.log_text()
    finally:
        broker.stop()


def test_broker_refuses_a_server_secret_key_readable_by_others(tmp_path, keys):
    os.chmod(keys["broker"].secret_path, 0o640)
    code, log = _serve_and_wait_exit(tmp_path, {"auth": {"server_secret_key_file": str(keys["broker"].secret_path)}})
    assert code == 2
    assert f"{keys['broker'].secret_path}: mode 0640 is too open" in log and "chmod 600" in log


def test_http_token_guards_everything_but_healthz(tmp_path):
    token = "tok-" + os.urandom(8).hex()
    broker = start_broker(tmp_path, config={"http": {"token": token}}, handlers=[])
    try:
        assert broker.healthz()["status"] == "ok"
        assert broker.get("/metrics")[0] == 401
        request = urllib.request.Request(f"http://{broker.http}/metrics", headers={"Authorization": f"Bearer {token}"})
        try:
            status = urllib.request.urlopen(request, timeout=10).status
        except urllib.error.HTTPError as exc:
            status = exc.code
        assert status != 401
        assert broker.healthz()["security"]["http_denied"] >= 1
        assert token not in broker.log_text() and token not in str(broker.healthz())
    finally:
        broker.stop()


def test_keys_generate_command_writes_0600_secret_and_0644_public(tmp_path):
    out = subprocess.run(secbus_command() + ["keys", "generate", "svc", "--dir", str(tmp_path / "k")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert oct(os.stat(tmp_path / "k" / "svc.key_secret").st_mode & 0o777) == "0o600"
    assert oct(os.stat(tmp_path / "k" / "svc.key").st_mode & 0o777) == "0o644"
    assert "[[auth.clients]]" in out.stdout


def test_cli_ping_emit_and_tail_work_with_keys_and_tail_sees_only_its_tenant(tmp_path, keys, secure):
    base = secbus_command()
    creds = ["--server-key", str(keys["broker"].public_path), "--key", str(keys["web"].secret_path)]
    ping = subprocess.run(base + ["ping", "--endpoint", secure.ingest] + creds, capture_output=True, text=True, timeout=60)
    assert ping.returncode == 0, ping.stderr
    emitted = subprocess.run(base + ["emit", "authn.login", "--outcome", "failure", "--endpoint", secure.ingest] + creds, capture_output=True, text=True, timeout=60)
    assert emitted.returncode == 0, emitted.stderr
    event_id = emitted.stdout.strip().split()[-1]
    assert [(e["publisher"], e["tenant"]) for e in secure.events() if e["id"] == event_id] == [("web", "acme")]

    tail = subprocess.Popen(base + ["tail", "--endpoint", secure.feed, "--topic", "event.authn.", "--count", "3", "--json"] + creds,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with secure.client_for(keys["web"]) as web, secure.client_for(keys["payments"]) as payments:
            def publish_round():
                web.publish([make_event("authn.login"), make_event("authz.check")])
                payments.publish([make_event("authn.login", actor={"user": "globex-user"})])
                return tail.poll() is not None
            wait_until(publish_round, timeout=30, interval=0.2, message="secbus tail to print 3 messages")
        out, err = tail.communicate(timeout=10)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    assert tail.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 3
    assert all(m["topic"].startswith("event.authn.") and m["body"]["tenant"] == "acme" for m in lines), lines
