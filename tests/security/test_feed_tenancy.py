"""The live feed per tenant, against a real CURVE broker: a tenant's subscriber never sees another
tenant's events, traces or alerts, whatever it subscribes to; an admin key sees every tenant."""

from __future__ import annotations

import pytest
import zmq

from secbus_sdk import wire

from support.broker import wait_until
from support.events import make_event

from .helpers import KeyPair
from .secure_broker import client_entry, start_secure_broker

pytest.importorskip("secbus.consumers.feed", reason="the broker's live feed is not in this tree yet")


@pytest.fixture
def keys(tmp_path):
    return {n: KeyPair(tmp_path / "keys", n) for n in ("broker", "web", "payments", "soc", "ops", "stranger")}


def subscriber(ctx, broker, pair, topics):
    sock = ctx.socket(zmq.SUB)
    sock.linger = 0
    sock.curve_serverkey = broker.server.public
    sock.curve_publickey = pair.public
    sock.curve_secretkey = pair.secret
    for t in topics:
        sock.setsockopt(zmq.SUBSCRIBE, t)
    sock.connect(broker.feed)
    return sock


def test_tenant_subscribers_see_only_their_tenant_and_admin_sees_all(tmp_path, keys):
    clients = [
        client_entry(keys["web"], "acme"),
        client_entry(keys["payments"], "globex"),
        client_entry(keys["ops"], "acme"),  # a second acme key that tries to snoop on globex
        client_entry(keys["soc"], "acme", admin=True),
    ]
    config = {"correlation": {"trace_idle_ms": 200, "expire_interval_ms": 50}}
    broker = start_secure_broker(tmp_path, keys["broker"], clients, probe=keys["soc"], config=config, handlers=["alerting"])
    ctx = zmq.Context()
    try:
        subs = {
            "acme-all": subscriber(ctx, broker, keys["web"], [b""]),  # narrowed by the broker to acme/
            "acme-snoop": subscriber(ctx, broker, keys["ops"], [b"globex/", b"event.", b"_/"]),  # all refused
            "globex-events": subscriber(ctx, broker, keys["payments"], [b"globex/event.", b"globex/trace", b"globex/alert."]),
            "admin": subscriber(ctx, broker, keys["soc"], [b""]),
            "stranger": subscriber(ctx, broker, keys["stranger"], [b""]),  # not on the allow-list
        }
        wait_until(lambda: broker.healthz()["security"].get("feed_subscriptions", 0) >= 5 and broker.healthz()["security"]["feed_denied"] >= 3,
                   message=lambda: f"subscriptions applied: {broker.healthz()['security']}")

        def burst(pair):
            attack = make_event("security.attack.detected", outcome="failure", severity="critical", actor={"ip": "198.51.100.9"})
            login = make_event("authn.login", outcome="failure", trace_id=attack["trace_id"])
            with broker.client_for(pair) as client:
                assert client.publish([login, attack])["accepted"] == 2

        burst(keys["web"])
        burst(keys["payments"])

        got = {name: [] for name in subs}

        def collect():
            for name, sock in subs.items():
                while sock.poll(0):
                    topic, body = sock.recv_multipart()
                    got[name].append((topic, wire.unpack(body)))
            kinds = {(t.split(b"/")[0], t.split(b"/")[1].split(b".")[0]) for t, _ in got["admin"]}
            return all((tenant, kind) in kinds for tenant in (b"acme", b"globex") for kind in (b"event", b"trace", b"alert"))

        wait_until(collect, timeout=30, interval=0.05, message=lambda: f"admin to see events, traces and alerts of both tenants: {[t for t, _ in got['admin']]}")
        collect()

        acme = got["acme-all"]
        assert {t.split(b"/")[1].split(b".")[0] for t, _ in acme} == {b"event", b"trace", b"alert"}
        assert all(t.startswith(b"acme/") for t, _ in acme), [t for t, _ in acme]
        assert all(b.get("tenant", "acme") == "acme" for t, b in acme if not t.startswith(b"acme/alert."))
        assert got["acme-snoop"] == []
        assert got["stranger"] == []
        assert broker.healthz()["security"]["handshakes_denied"] >= 1
        assert got["globex-events"] and all(t.startswith(b"globex/") for t, _ in got["globex-events"])
        acme_ids = {b["id"] for t, b in acme if t.startswith(b"acme/event.")}
        globex_ids = {b["id"] for t, b in got["globex-events"] if t.startswith(b"globex/event.")}
        assert acme_ids and globex_ids and not acme_ids & globex_ids
    finally:
        ctx.destroy(linger=0)
        broker.stop()
