"""The ZAP handler on real CURVE sockets: allow-listed keys get in under their name, others get nothing.

These run the broker's own security object on real ZeroMQ sockets in this
process; the end-to-end tests against a broker process are in test_broker_auth.py.
"""

from __future__ import annotations

import pytest
import zmq

from secbus.auth.allowlist import parse_allow_list
from secbus.auth.security import Security
from secbus.auth.feed import split_topic, subscriptions_for
from secbus.auth.keys import load_secret_key_file

from support.broker import wait_until

from .helpers import KeyPair


@pytest.fixture
def keys(tmp_path):
    return {name: KeyPair(tmp_path, name) for name in ("broker", "web", "globex-app", "soc", "stranger")}


@pytest.fixture
def security(keys):
    clients = [
        {"name": "web", "public_key": keys["web"].public_text, "tenant": "acme", "types": ["authn."]},
        {"name": "globex-app", "public_key": keys["globex-app"].public_text, "tenant": "globex", "types": ["*"]},
        {"name": "soc", "public_key": keys["soc"].public_text, "tenant": "acme", "types": ["*"], "admin": True},
    ]
    sec = Security(load_secret_key_file(keys["broker"].secret_path), parse_allow_list(clients))
    yield sec
    sec.stop()


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


def client(ctx, kind, server, pair):
    sock = ctx.socket(kind)
    sock.linger = 0
    sock.curve_serverkey = server.public
    sock.curve_publickey = pair.public
    sock.curve_secretkey = pair.secret
    return sock


def test_allowed_key_is_admitted_and_its_messages_carry_its_allow_list_name(ctx, keys, security):
    security.start(ctx)
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    security.secure_server_socket(router)
    router.bind("tcp://127.0.0.1:*")
    dealer = client(ctx, zmq.DEALER, keys["broker"], keys["web"])
    dealer.connect(router.last_endpoint.decode())
    dealer.send_multipart([b"SECBUS1", b"PING", b"\x80"])
    assert router.poll(5000), "allowed client's message never arrived"
    frames = router.recv_multipart(copy=False)
    ident = security.identity_for(frames)
    assert (ident.publisher, ident.tenant) == ("web", "acme")
    assert security.stats()["handshakes_allowed"] >= 1 and security.stats()["handshakes_denied"] == 0


def test_unknown_key_gets_nothing_through_and_is_counted(ctx, keys, security, caplog):
    security.start(ctx)
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    security.secure_server_socket(router)
    router.bind("tcp://127.0.0.1:*")
    stranger = client(ctx, zmq.DEALER, keys["broker"], keys["stranger"])
    stranger.connect(router.last_endpoint.decode())
    stranger.send_multipart([b"SECBUS1", b"PING", b"\x80"])
    wait_until(lambda: security.stats()["handshakes_denied"] >= 1, message="the denied handshake to be counted")
    assert not router.poll(300), "a message from an unknown key reached the broker"
    assert security.stats()["last_denied"]["public_key"] == keys["stranger"].public_text
    assert any("not in the allow-list" in r.getMessage() for r in caplog.records)
    # and a client without CURVE at all cannot talk to a CURVE server either
    plain = ctx.socket(zmq.DEALER)
    plain.linger = 0
    plain.connect(router.last_endpoint.decode())
    plain.send_multipart([b"SECBUS1", b"PING", b"\x80"])
    assert not router.poll(300)


def test_feed_gate_keeps_each_tenant_in_its_namespace_and_admin_sees_all(ctx, keys, security):
    security.start(ctx)
    xpub = ctx.socket(zmq.XPUB)
    xpub.linger = 0
    security.secure_server_socket(xpub)
    gate = security.feed_gate(xpub)
    xpub.bind("tcp://127.0.0.1:*")
    endpoint = xpub.last_endpoint.decode()

    subs = {}
    # acme asks for everything (""), globex asks for its alerts only, and tries to snoop on acme
    wants = {"web": [b""], "globex-app": [b"globex/alert.", b"acme/", b"event."], "soc": [b""]}
    for name, topics in wants.items():
        sub = client(ctx, zmq.SUB, keys["broker"], keys[name])
        for t in topics:
            sub.setsockopt(zmq.SUBSCRIBE, t)
        sub.connect(endpoint)
        subs[name] = sub

    got = {name: [] for name in subs}
    messages = [b"acme/event.authn.login", b"acme/alert.high", b"globex/event.authn.login", b"globex/alert.high", b"_/trace"]

    def pump():
        if xpub.poll(0):
            gate.handle()
        for topic in messages:
            xpub.send_multipart([topic, b"body"])
        for name, sub in subs.items():
            while sub.poll(0):
                got[name].append(sub.recv_multipart()[0])
        return all(got.values()) and len(set(got["soc"])) == len(messages)

    wait_until(pump, timeout=10, interval=0.02, message="every subscriber to receive its messages")
    assert set(got["web"]) == {b"acme/event.authn.login", b"acme/alert.high"}
    assert set(got["globex-app"]) == {b"globex/alert.high"}
    assert set(got["soc"]) == set(messages)
    assert gate.stats()["denied"] == 2  # globex's "acme/" and "event."


def test_subscriber_side_helpers_prefix_and_strip_the_tenant():
    assert subscriptions_for(["event.authn."], "acme") == [b"acme/event.authn."]
    assert subscriptions_for([], None, scoped=False) == [b""]
    assert split_topic(b"acme/event.authn.login") == ("acme", b"event.authn.login")
    assert split_topic(b"event.authn.login") == (None, b"event.authn.login")


def test_scoped_subscriber_without_a_tenant_subscribes_to_its_namespace_and_filters_locally():
    from secbus.auth.feed import wanted

    assert subscriptions_for(["event.authn."], None, scoped=True) == [b""]
    assert subscriptions_for(["event.authn."], None, scoped=False) == [b"event.authn."]
    assert wanted(b"event.authn.login", ["event.authn."]) and not wanted(b"alert.high", ["event.authn."])
    assert wanted(b"alert.high", [])


def test_an_alert_belongs_to_a_tenant_only_when_all_its_events_do():
    from secbus.auth.feed import tenant_of_alert

    events = {1: {"tenant": "acme"}, 2: {"tenant": "acme"}, 3: {"tenant": "globex"}}
    assert tenant_of_alert({"seqs": [1, 2]}, events.get) == "acme"
    assert tenant_of_alert({"seqs": [1, 3]}, events.get) is None  # spans tenants: admins only
    assert tenant_of_alert({"seqs": [1, 99]}, events.get) is None  # an event no longer readable
    assert tenant_of_alert({"seqs": []}, events.get) is None
    assert tenant_of_alert({"tenant": "globex", "seqs": [1]}, events.get) == "globex"
