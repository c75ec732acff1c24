"""A secret-named attr never reaches the event log, the feed or `secbus trace`."""

import json
import subprocess
import sys

from secbus.ingest.redact import REDACTED, SecretKeys
from support.broker import RawClient
from secbus_sdk import wire
from secbus_sdk.event import new_event_id, new_span_id, new_trace_id


def login_event(trace_id, **attrs):
    return {
        "v": 1, "id": new_event_id(), "ts": 1_763_900_000_000_000_000, "type": "authn.login", "outcome": "failure",
        "trace_id": trace_id, "span_id": new_span_id(),
        "source": {"platform": "python", "sdk": "test", "service": "web"}, "attrs": attrs,
    }


def publish(broker, events):
    with RawClient(broker.ingest) as client:
        command, body = client.request(wire.PUB, {"seq": 1, "events": events})
    assert command == wire.ACK, body
    return body


def test_secret_named_attrs_are_redacted_before_they_are_stored(broker_factory):
    broker = broker_factory(handlers=[])
    trace_id = new_trace_id()
    ack = publish(broker, [login_event(trace_id, password="hunter2", api_token="t0k3n", user_agent="curl")])
    assert ack["accepted"] == 1
    [stored] = broker.events()
    assert stored["attrs"] == {"api_token": REDACTED, "password": REDACTED, "user_agent": "curl"}
    out = subprocess.run([sys.executable, "-m", "secbus.cli", "trace", trace_id, "--json", "--data-dir", str(broker.data_dir)],
                         capture_output=True, text=True, check=True).stdout
    assert "hunter2" not in out and "t0k3n" not in out
    assert json.loads(out.splitlines()[0])["attrs"]["password"] == REDACTED
    assert broker.healthz()["ingest"]["events_redacted"] == 1


def test_an_empty_redact_keys_list_turns_redaction_off(broker_factory):
    broker = broker_factory(config={"ingest": {"redact_keys": []}}, handlers=[])
    publish(broker, [login_event(new_trace_id(), password="kept-on-purpose")])
    [stored] = broker.events()
    assert stored["attrs"]["password"] == "kept-on-purpose"


def test_secret_words_match_case_insensitively_inside_longer_names():
    keys = SecretKeys()
    assert keys.is_secret("X-Auth-Token") and keys.is_secret("session_cookie") and keys.is_secret("DB_PASSWORD")
    assert not keys.is_secret("user") and not keys.is_secret("alg")
    assert keys.redact({"attrs": {"alg": "Ed25519"}}) is None, "nothing secret: no copy, stored as received"


def test_the_one_search_over_all_keys_agrees_with_the_verdict_per_key():
    keys = ["user", "X-Auth-Token", "api_KEY", "token_type", "passwd.hash", "Cookie", "mfa", "private_key_id", "n", "SECRETS:v1"]
    for words in (("password", "passwd", "secret", "token", "cookie", "api_key", "private_key"), ("a.b",), ()):
        secrets = SecretKeys(words)
        for key in keys:
            assert secrets.any_secret([key]) == secrets.is_secret(key), (words, key)
        assert secrets.any_secret(keys) == any(secrets.is_secret(k) for k in keys)
        assert not secrets.any_secret(["user", "ab"])  # "a.b" is a literal word, not a pattern
