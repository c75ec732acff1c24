"""Both SDKs publish to a CURVE broker with keys from `secbus keys generate` files, and their
events are stamped with the key's identity; a forbidden type is rejected, not stored."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from secbus_sdk import Client

from support.broker import wait_until

from .helpers import KeyPair
from .secure_broker import client_entry, start_secure_broker

HERE = Path(__file__).resolve().parent
NODE = shutil.which("node")
ZEROMQ_JS = HERE.parents[1] / "sdk-js" / "node_modules" / "zeromq"


@pytest.fixture
def keys(tmp_path):
    return {n: KeyPair(tmp_path / "keys", n) for n in ("broker", "web", "payments", "soc")}


@pytest.fixture
def secure(tmp_path, keys):
    clients = [
        client_entry(keys["web"], "acme", ["authn."]),
        client_entry(keys["payments"], "globex", ["security.signature.", "authz."]),
        client_entry(keys["soc"], "acme", ["*"], admin=True),
    ]
    broker = start_secure_broker(tmp_path, keys["broker"], clients, probe=keys["soc"])
    yield broker
    broker.stop()


def test_python_sdk_publishes_over_curve_with_key_files(tmp_path, keys, secure):
    client = Client(endpoint=secure.ingest, service="web", spool_dir=str(tmp_path / "spool"),
                    server_key=str(keys["broker"].public_path), secret_key=str(keys["web"].secret_path))
    try:
        ids = [client.emit("authn.login", outcome="success", actor={"user": "alice"}) for _ in range(5)]
        forbidden = client.emit("config.change", outcome="success")
        assert client.flush(20)
    finally:
        client.close(5)
    stored = {e["id"]: e for e in secure.events()}
    assert all((stored[i]["publisher"], stored[i]["tenant"]) == ("web", "acme") for i in ids)
    assert forbidden not in stored


@pytest.mark.skipif(NODE is None, reason="node is not installed")
@pytest.mark.skipif(not ZEROMQ_JS.exists(), reason="sdk-js dependencies are not installed (make test runs npm ci)")
def test_node_sdk_publishes_over_curve_with_key_files(tmp_path, keys, secure):
    out = subprocess.run(
        [NODE, str(HERE / "node_curve_publisher.mjs"), secure.ingest, str(keys["broker"].public_path), str(keys["payments"].secret_path), str(tmp_path / "node-spool")],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["flushed"], result
    ok, forbidden = result["ids"][:2], result["ids"][2]
    stored = wait_until(lambda: (s := {e["id"]: e for e in secure.events()}) and all(i in s for i in ok) and s, message="the Node events in the log")
    assert all((stored[i]["publisher"], stored[i]["tenant"]) == ("payments", "globex") for i in ok)
    assert forbidden not in stored
    assert secure.healthz()["rejects"].get("unauthorized", 0) >= 1
