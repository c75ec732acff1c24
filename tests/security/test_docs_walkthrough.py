"""docs/security.md section 3 works as written: the commands, the config block and the SDK call.

The test follows the page: `secbus keys generate` for the broker and each client, the TOML
block of section 3.3 (with its addresses moved to loopback and free ports, its data dir to a temp
dir, and its example public keys replaced by the ones just generated), `secbus serve --config`,
the Python SDK with key files (3.4), `secbus ping` with keys (3.5), and /healthz (3.6).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from secbus_sdk import Client

from support.broker import secbus_command, wait_until

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def doc_toml() -> str:
    text = DOC.read_text()
    section = text[text.index("### 3.3"):text.index("### 3.4")]
    return re.search(r"```toml\n(.*?)```", section, re.S).group(1)


def run(args, cwd, timeout=60):
    out = subprocess.run(secbus_command() + args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{args}: {out.stderr}"
    return out.stdout


def test_the_step_by_step_ironhouse_walkthrough_works_as_written(tmp_path):
    etc, home = tmp_path / "etc", tmp_path / "home"
    etc.mkdir()
    home.mkdir()
    run(["keys", "generate", "broker", "--dir", "keys"], cwd=etc)                     # 3.1
    publics = {}
    for name in ("web-eu", "payments", "soc-alice"):                                  # 3.2
        out = run(["keys", "generate", name, "--dir", str(home)], cwd=home)
        publics[name] = re.search(r"public key\s+(\S{40})", out).group(1)
    (etc / "keys" / "clients").mkdir()
    shutil.copy(home / "payments.key", etc / "keys" / "clients" / "payments.key")

    toml = doc_toml()                                                                  # 3.3
    toml = toml.replace("/var/lib/secbus", str(tmp_path / "data"))
    toml = re.sub(r'"tcp://10\.0\.0\.5:\d+"', '"tcp://127.0.0.1:0"', toml)
    toml = re.sub(r'"10\.0\.0\.5:\d+"', '"127.0.0.1:0"', toml)
    current = None
    lines = []
    for line in toml.splitlines():
        m = re.match(r'name = "([^"]+)"', line)
        if m:
            current = m.group(1)
        if line.startswith("public_key = ") and current in publics:
            line = f'public_key = "{publics[current]}"'
        lines.append(line)
    (etc / "secbus.toml").write_text("\n".join(lines) + "\n")

    broker = subprocess.Popen(secbus_command() + ["serve", "--config", str(etc / "secbus.toml")], cwd=etc,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        runtime = tmp_path / "data" / "broker.json"
        wait_until(lambda: runtime.exists() or broker.poll() is not None, timeout=30, message="the broker to start")
        assert broker.poll() is None, broker.stdout.read()
        addresses = json.loads(runtime.read_text())

        client = Client(endpoint=addresses["ingest"], service="web", spool_dir=str(tmp_path / "spool"),  # 3.4
                        server_key=str(etc / "keys" / "broker.key"), secret_key=str(home / "web-eu.key_secret"))
        try:
            event_id = client.emit("authn.login", outcome="success", actor={"user": "alice"})
            assert client.flush(20)
        finally:
            client.close(5)

        out = run(["ping", "--endpoint", addresses["ingest"], "--server-key", str(etc / "keys" / "broker.key"),  # 3.5
                   "--key", str(home / "soc-alice.key_secret")], cwd=home)
        assert out

        health = json.loads(urllib.request.urlopen(f"http://{addresses['http']}/healthz", timeout=10).read())  # 3.6
        sec = health["security"]
        assert sec["curve"] is True and sec["clients"] == 3 and sec["http_token"] is True
        assert sec["rate_per_publisher"] == 5000
        assert health["ingest"]["events_accepted"] >= 1
    finally:
        broker.terminate()
        output = broker.communicate(timeout=30)[0]
    assert "security: CURVE on ingest and feed, 3 allow-listed client key(s)" in output
    from secbus.log.sqlite import SqliteLog

    log = SqliteLog(tmp_path / "data", create=False)
    try:
        stored = [e for e in log.read("events", 0, 100) if e["id"] == event_id]
    finally:
        log.close()
    assert [(e["publisher"], e["tenant"]) for e in stored] == [("web-eu", "acme")]
