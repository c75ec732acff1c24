"""``python -m benchmarks.readme``: the README's "## Performance" section from
``results/latest.json``, so the README always quotes a real run.

``--write README.md`` replaces the section (from its heading to the end of
the file, where it lives) in place; without it, the section is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .result import fmt

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
HEADING = "## Performance"


def _fig(data: dict, section: str, *path, default=None):
    value = data["sections"].get(section, {}).get("figures", {})
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return default
        value = value[key]
    return value


def _elsewhere(run: dict, here: dict) -> str:
    """``, on MODEL`` when ``run`` was measured on another machine than ``here``, else nothing."""
    model = run["meta"]["machine"]["cpu_model"]
    return "" if model == here["cpu_model"] else f", on {model}"


def section(data: dict) -> str:
    meta = data["meta"]
    m = meta["machine"]
    lines = [
        HEADING,
        "",
        f"Measured by `make bench` (quick mode) on {m['cores']} cores ({m['cpu_model']}), {meta['started'][:10]}, "
        f"on a machine shared with other test runs (load average {meta['machine'].get('load_average_at_start')} at the "
        "start): figures are medians of interleaved repetitions, each compared with a baseline measured in the same "
        "run. Full tables: [benchmarks/results/latest.md](benchmarks/results/latest.md); what limits each figure and "
        "what would move it: [benchmarks/FINDINGS.md](benchmarks/FINDINGS.md); how to run and read them: "
        "[benchmarks/README.md](benchmarks/README.md). Absolute rates, and latencies at a fixed rate, depend on the "
        "machine: compare two runs by their raw ZeroMQ baseline (under \"Side by side\") before comparing their figures.",
        "",
        "| target | measured | result |",
        "| --- | --- | --- |",
    ]
    for sec in data["sections"].values():
        for t in sec.get("targets", []):
            op = ">=" if t["higher_is_better"] else "<="
            result = "not measured" if t["hit"] is None else ("hit" if t["hit"] else "**miss**")
            lines.append(f"| {t['name']} {op} {fmt(t['limit'])} {t['unit']} | {fmt(t['value'])} {t['unit']} | {result} ({t['by']}) |")
    for folder, section, how in (("full-memory", "memory", "full mode"), ("full-e2e", "e2e", "full mode, 10 s steps")):
        full = RESULTS.parent / folder / "latest.json"
        if not full.exists():
            continue
        fm = json.loads(full.read_text())
        how += _elsewhere(fm, m)
        for t in fm["sections"][section]["targets"]:
            if section == "e2e" and not ("highest bounded" in t["name"] or "publish-to-ACK" in t["name"]):
                continue  # the full run's other e2e figures repeat the quick run's (but its ACK runs last 10 s, not 2)
            op = ">=" if t["higher_is_better"] else "<="
            lines.append(f"| {t['name']} ({how}, {fm['meta']['started'][:16]}) {op} {fmt(t['limit'])} {t['unit']} | "
                         f"{fmt(t['value'])} {t['unit']} | {'hit' if t['hit'] else '**miss**'} ({t['by']}) |")
    lines += ["", "Side by side:", ""]
    sl = _fig(data, "syslog", "syslog")
    sb = _fig(data, "syslog", "secbus")
    if sl:
        lines.append(f"- Python `logging` + `SysLogHandler` over TCP into rsyslog: {fmt(sl['events_per_s']['median'])} events/s "
                     f"until written to rsyslog's file, {fmt(sl['per_call_us']['p50'])} us per call (p99 {fmt(sl['per_call_us']['p99'])} us)"
                     + (f"; secbus `emit()` into the broker: {fmt(sb['events_per_s']['median'])} events/s until ACKed after commit, "
                        f"{fmt(sb['per_call_us']['p50'])} us per call (p99 {fmt(sb['per_call_us']['p99'])} us)." if sb else "."))
    raw = _fig(data, "ingest", "p2_b100", "raw_events_per_s", "median")
    brk = _fig(data, "ingest", "p2_b100", "broker_events_per_s", "median")
    if raw:
        lines.append(f"- Raw pyzmq PUSH/PULL with msgpack decoding of the same bodies (2 publishers x 100): {fmt(raw)} events/s; "
                     f"the broker, durable and ACKed: {fmt(brk)} events/s ({fmt(brk / raw if brk else None)} of raw).")
    for lang in ("python", "node"):
        v = _fig(data, "overhead", f"{lang}_verify_ns")
        cpu = _fig(data, "overhead", f"{lang}_overhead_cpu")
        if v is not None and cpu is not None:
            wall = _fig(data, "overhead", f"{lang}_overhead_wall")
            caller = _fig(data, "overhead", f"{lang}_overhead_caller_cpu")
            split = "" if caller is None else f" ({caller * 100:+.1f}% in the calling thread, `emit()` itself)"
            lines.append(f"- {lang.capitalize()}: Ed25519 verify of 256 bytes takes {fmt(v / 1000)} us here; one `emit()` after "
                         f"each adds {cpu * 100:+.1f}% process CPU{split}, sender thread included, {wall * 100:+.1f}% to the caller's loop.")
    al = _fig(data, "e2e", "alert")
    if al and al["alert_ms"].get("n"):
        lines.append(f"- Publish-to-alert (threshold rule, 5th failed login to the alert on the live feed): p50 "
                     f"{fmt(al['alert_ms']['p50'])} ms, p99 {fmt(al['alert_ms']['p99'])} ms.")
    full_soak = RESULTS.parent / "full-soak" / "latest.json"
    for run in [data] + ([json.loads(full_soak.read_text())] if full_soak.exists() else []):
        soak = run["sections"].get("soak")
        if soak and soak.get("figures"):
            f = soak["figures"]
            when = "" if run is data else f", full mode, {run['meta']['started'][:16]}{_elsewhere(run, m)}"
            lines.append(f"- Soak with faults ({fmt(run['meta']['config']['soak_seconds'])} s{when}, broker SIGKILLed {f.get('kills')} times, "
                         f"a handler failing a fifth of its batches, publishers in both SDKs: {sum(f.get('emitted', {}).values()):,} events): "
                         f"{f.get('lost_log')} lost and {f.get('duplicated_log')} duplicated in the log, {f.get('lost_audit')} lost and "
                         f"{f.get('duplicated_audit')} duplicated in the audit trail, "
                         f"`secbus audit verify{' --complete' if f.get('audit_verify_complete') else ''}` "
                         f"{'passes' if f.get('audit_verify_exit') == 0 else 'FAILS'}.")
    lines += ["", "Run them yourself: `make bench` (a few minutes) or `make bench BENCH_MODE=full` (longer runs, 1M-event "
              "backlog, 5-minute soak).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.readme")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--write", type=Path, default=None, help="README to update in place")
    args = parser.parse_args(argv)
    text = section(json.loads(args.results.read_text()))
    if args.write is None:
        print(text)
        return 0
    readme = args.write.read_text(encoding="utf-8")
    at = readme.find("\n" + HEADING + "\n")
    head = readme if at < 0 else readme[:at]
    args.write.write_text(head.rstrip("\n") + "\n\n" + text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
