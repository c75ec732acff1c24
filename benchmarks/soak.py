"""Item 6: soak with faults. Nothing lost, nothing duplicated, chain intact.

For ``soak_seconds`` (about 1 minute in quick mode, 5 in full):

* a Python SDK publisher and a Node SDK publisher each emit at a steady rate
  (``on_full="block"``), writing down every event id they were given;
* the broker runs the built-in ``audit`` handler plus ``bench-probe`` set to
  raise on a random fifth of its batches (the broker must retry them), and is
  SIGKILLed and restarted on the same ports and data every
  ``soak_kill_interval`` seconds, staying down about a second each time;
* at the end the publishers flush, the handlers drain, the broker stops, and
  we check: every emitted id is in the event log exactly once; every emitted
  id is in the audit trail exactly once; ``secbus audit verify --complete`` passes on the
  audit files; and the failing handler saw every event at least once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from . import components
from .config import Config
from .e2e import consumer_lags
from .harness import wait_until
from .result import Section, Table

RATE_PER_PUBLISHER = 200  # events/s
OUTAGE_S = 1.0


def _read_ids(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line]
    except FileNotFoundError:
        return []


def _audit_ids(audit_dir: Path) -> tuple[list[str], list[Path]]:
    files = sorted(audit_dir.glob("audit-*.jsonl"))
    ids = []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                if rec.get("kind") == "event":
                    ids.append(rec["event"]["id"])
    return ids, files


def run(cfg: Config) -> Section:
    sec = Section("soak", f"Soak with faults ({cfg.soak_seconds:g} s, broker SIGKILLed every {cfg.soak_kill_interval:g} s)")
    support = components.broker_support()
    if support is None:
        return sec.skip("no broker yet")
    if components.python_client() is None:
        return sec.skip("no Python SDK Client yet")
    components.ensure_probe_installed()
    work = Path(tempfile.mkdtemp(prefix="secbus-bench-soak-"))
    probe_ids = work / "probe-ids.txt"
    config = {"handlers": {"bench-probe": {"fail_rate": 0.2, "ids_file": str(probe_ids), "seed": 3}}}
    broker = support.start_broker(work, config=config, handlers=["audit", "bench-probe"])
    pubs = []
    kills = 0
    keep = False
    try:
        py_ids, node_ids = work / "python-ids.txt", work / "node-ids.txt"
        common = {"endpoint": broker.ingest, "rate": RATE_PER_PUBLISHER, "seconds": cfg.soak_seconds}
        pubs.append(("python", subprocess.Popen(
            [sys.executable, "-m", "benchmarks.soak_pub",
             json.dumps(dict(common, ids_file=str(py_ids), spool_dir=str(work / "spool-python")))],
            cwd=str(components.ROOT), stdout=subprocess.PIPE, stderr=open(work / "python-pub.log", "wb"), text=True)))
        if components.node_client_available():
            pubs.append(("node", subprocess.Popen(
                [components.node(), str(components.NODE_SCRIPT.parent / "soak_pub.mjs"),
                 json.dumps(dict(common, idsFile=str(node_ids), spoolDir=str(work / "spool-node"), sdkPath=str(components.SDK_JS)))],
                cwd=str(components.ROOT), stdout=subprocess.PIPE, stderr=open(work / "node-pub.log", "wb"), text=True)))
        else:
            sec.status = "partial"
            sec.notes.append("Node publisher not run: the Node SDK Client is not available yet")

        end = time.monotonic() + cfg.soak_seconds
        stop = threading.Event()
        while time.monotonic() + cfg.soak_kill_interval < end:
            if stop.wait(cfg.soak_kill_interval):
                break
            broker.kill()
            kills += 1
            time.sleep(OUTAGE_S)  # the outage is the fault being injected
            broker.start().wait_ready(60)
        outputs = {}
        for name, proc in pubs:
            out, _ = proc.communicate(timeout=cfg.soak_seconds + 240)
            lines = [line for line in out.splitlines() if line.startswith("{")]
            outputs[name] = json.loads(lines[-1]) if lines else {"error": f"exit {proc.returncode}, no output"}
        emitted = {"python": _read_ids(py_ids), "node": _read_ids(node_ids) if len(pubs) > 1 else []}
        all_ids = emitted["python"] + emitted["node"]
        wanted = set(all_ids)

        def stored_all():
            return wanted <= {e["id"] for e in broker.events()}

        try:
            wait_until(stored_all, timeout=120, interval=0.5)
        except TimeoutError:
            pass
        try:
            wait_until(lambda: all(v == 0 for v in consumer_lags(broker).values()), timeout=120, interval=0.2)
        except TimeoutError:
            sec.notes.append(f"handlers did not drain within 120 s: {consumer_lags(broker)}")
        health = broker.healthz()
        broker.stop()
        stored = [e["id"] for e in broker.events()]
        stored_count = Counter(stored)
        audit_dir = broker.data_dir / "audit"
        audit, files = _audit_ids(audit_dir)
        audit_count = Counter(audit)
        probe_count = Counter(_read_ids(probe_ids))
        cli = components.secbus_cli()
        verify = subprocess.run([cli, "audit", "verify", "--complete", *map(str, files)], capture_output=True, text=True, timeout=300) \
            if files else None
        lost_log = len(wanted - set(stored_count))
        dup_log = sum(c - 1 for c in stored_count.values() if c > 1)
        lost_audit = len(wanted - set(audit_count))
        dup_audit = sum(c - 1 for c in audit_count.values() if c > 1)
        probe_missed = len(wanted - set(probe_count))
        verify_ok = verify is not None and verify.returncode == 0
        passed = (lost_log == 0 and dup_log == 0 and lost_audit == 0 and dup_audit == 0 and verify_ok
                  and len(all_ids) == len(wanted) and all(o.get("flushed") for o in outputs.values()))
        keep = not passed
        sec.figures.update(
            kills=kills, emitted={k: len(v) for k, v in emitted.items()}, publishers=outputs, stored=len(stored),
            lost_log=lost_log, duplicated_log=dup_log, audit_records=len(audit), lost_audit=lost_audit,
            duplicated_audit=dup_audit, audit_files=len(files), audit_verify_exit=verify.returncode if verify else None,
            audit_verify_complete=True,
            audit_verify_output=(verify.stdout + verify.stderr)[-500:] if verify else "no audit files",
            probe_missed=probe_missed, probe_redeliveries=sum(c - 1 for c in probe_count.values() if c > 1),
            handlers=health.get("handlers"), passed=passed,
        )
        sec.tables.append(Table("Soak verdict", ["check", "result"], [
            ["publishers (events emitted)", ", ".join(f"{k} {len(v):,}" for k, v in emitted.items() if v or k == "python")],
            ["broker SIGKILLs (each ~1 s down)", kills],
            ["lost in the event log", lost_log], ["duplicated in the event log", dup_log],
            ["lost in the audit trail", lost_audit], ["duplicated in the audit trail", dup_audit],
            ["secbus audit verify --complete (intact, no event seq missing)", "passes" if verify_ok else f"FAILS (exit {verify.returncode if verify else '-'})"],
            ["batches the failing handler raised on (retried by the broker, since its last restart)",
             ((health.get("handlers") or {}).get("bench-probe") or {}).get("failures")],
            ["events the randomly failing handler never saw", probe_missed],
            ["redeliveries to the failing handler (at least once)", sec.figures["probe_redeliveries"]],
            ["verdict", "PASS" if passed else "FAIL"],
        ]))
        for name, o in outputs.items():
            st = o.get("stats", {})
            sec.notes.append(f"{name} SDK: flushed={o.get('flushed')} acked={st.get('acked')} duplicate={st.get('duplicate')} "
                             f"spooled={st.get('spooled')} replayed={st.get('replayed')} dropped={st.get('dropped')}")
        if not passed:
            sec.status = "error"
            sec.reason = "the soak found lost or duplicated events or a broken audit chain"
            sec.notes.append(f"kept the soak's files for inspection: {work}")
    finally:
        for _, proc in pubs:
            if proc.poll() is None:
                proc.kill()
        if broker.running:
            broker.kill()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return sec
