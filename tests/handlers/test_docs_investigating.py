"""docs/investigating.md works as written: its commands, in order, against a real broker.

The page's ``$ `` lines run in a shell whose ``./secbus-data`` is the broker's data dir and
whose ``SECBUS_INGEST_ENDPOINT``/``SECBUS_FEED_ENDPOINT`` point at it, as after ``make run``.
The alert id the page shows is replaced by the id of the same rule's alert in this run;
``secbus tail`` lines (they follow the feed until Ctrl-C) must still be following after 3 s.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from support.broker import start_broker, wait_until

DOC = Path(__file__).resolve().parents[2] / "docs" / "investigating.md"
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


def doc_commands() -> list[str]:
    blocks = re.findall(r"```console\n(.*?)```", DOC.read_text(), re.S)
    return [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ ")]


def test_the_investigation_walkthrough_works_as_written(tmp_path):
    broker = start_broker(tmp_path, handlers=["audit", "alerting"])
    try:
        work = tmp_path / "work"
        work.mkdir()
        (work / "secbus-data").symlink_to(broker.data_dir)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SECBUS_")}
        env.update(SECBUS_INGEST_ENDPOINT=broker.ingest, SECBUS_FEED_ENDPOINT=broker.feed,
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")

        def shell(command: str, timeout: float = 60) -> subprocess.CompletedProcess:
            return subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=timeout)

        outputs: dict[str, str] = {}
        alerts_raised = False
        documented_ids = set(UUID.findall(DOC.read_text()))
        for command in doc_commands():
            if command.startswith("secbus tail"):
                try:
                    shell(command, timeout=3)
                except subprocess.TimeoutExpired:
                    continue  # still following: the options parsed and it subscribed
                raise AssertionError(f"{command}: ended instead of following the feed")
            if command.startswith("secbus alerts") and not alerts_raised:
                # alerting reads the log behind its own cursor: wait for the three alerts the page shows
                wait_until(lambda: len(broker.alerts()) >= 3, 20, message="the three alerts")
                alerts_raised = True
            for documented in documented_ids & set(UUID.findall(command)):
                rule = "authn-success-after-failures"
                command = command.replace(documented, next(a["id"] for a in broker.alerts() if a["rule"] == rule))
            r = shell(command)
            assert r.returncode == 0, f"{command}: exit {r.returncode}: {r.stderr}"
            outputs[command] = r.stdout

        def by_start(prefix: str) -> str:
            return next(out for cmd, out in outputs.items() if cmd.startswith(prefix))

        assert [line.split("  ")[2] for line in by_start("secbus alerts --since").splitlines()] == [
            "authn-brute-force", "authn-success-after-failures", "authz-admin-denied"]
        shown = by_start("secbus alerts 0").splitlines()
        events = [line for line in shown if line.startswith("  20")]
        assert "authn-success-after-failures" in shown[0] and len(events) == 6
        assert all("user=alice  ip=203.0.113.7" in line for line in events)
        trace = by_start("secbus trace").splitlines()
        assert "services billing, web" in trace[0] and "resource=admin/users" in trace[2]
        assert len(by_start("secbus events --actor-user").splitlines()) == 7
        assert len(by_start("secbus events --actor-ip").splitlines()) == 5
        exported = [json.loads(line) for line in (work / "alice.jsonl").read_text().splitlines()]
        assert len(exported) == 7 and all(e["actor"]["user"] == "alice" and e["seq"] for e in exported)
        assert len(json.loads((work / "alert.json").read_text())["events"]) == 6
        assert by_start("secbus audit verify").startswith("OK: ")
        assert by_start("secbus audit verify").rstrip().endswith("event seqs 1-7, none missing")
    finally:
        broker.stop()
