"""The benchmark suite still runs: its machinery on tiny sizes, no timing asserted.

``make bench`` takes minutes, so the test suite proves the parts instead: the
raw ZeroMQ baseline delivers every event it sends, interleaving rotates the
order and takes medians, the report writes both files with hit/miss verdicts,
and the command line runs a real section end to end into a temp directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from benchmarks import readme, report
from benchmarks.brokers import children, descendants, wait_gone
from benchmarks.harness import interleave, percentile
from benchmarks.loadgen import raw_pushpull_rate
from benchmarks.result import Section, Table, Target
from tests.support.broker import wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_raw_pushpull_baseline_receives_every_event_it_sends():
    out = raw_pushpull_rate(publishers=2, batch=10, events_per_publisher=300, time_limit=20)
    assert out["events"] == 600
    assert out["events_per_s"] > 0


def test_interleave_rotates_the_order_and_reports_medians():
    calls = []
    values = {"a": iter([9, 1, 2, 3]), "b": iter([9, 10, 20, 30])}
    runs = {name: (lambda name=name: calls.append(name) or next(values[name])) for name in values}
    res = interleave(runs, repeats=3, warmup=True)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert res["a"].values == [1, 2, 3] and res["a"].median == 2
    assert res["b"].median == 20


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([7], 99) == 7


def test_report_writes_markdown_and_json_with_hit_and_miss(tmp_path):
    sec = Section("x", "A section")
    sec.tables.append(Table("t", ["a", "b"], [[1, 2.5]]))
    sec.targets += [Target("fast enough", 3.0, 2.0, "us", False), Target("carries enough", 150000, 100000, "events/s", True)]
    sec.figures["nan"] = float("nan")
    meta = {"mode": "tiny", "started": "s", "finished": "f", "seconds": 1.0, "commit": "abc", "machine": {"cores": 2}}
    md, js = report.write(tmp_path, meta, [sec])
    text = md.read_text()
    assert "HIT" in text and "MISS (-33%)" in text and "| 1 | 2.50 |" in text
    data = json.loads(js.read_text())
    assert data["sections"]["x"]["figures"]["nan"] is None
    assert [t["hit"] for t in data["sections"]["x"]["targets"]] == [True, False]


def test_command_line_runs_a_section_and_writes_results(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--mode", "tiny", "--only", "overhead", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "latest.json").read_text())
    sec = data["sections"]["overhead"]
    assert sec["status"] in ("ok", "partial"), sec
    assert sec["figures"]["python_verify_ns"] > 0
    # the calling thread's own share is reported beside the process's (a ratio, so any sign)
    assert isinstance(sec["figures"]["python_overhead_caller_cpu"], float)
    assert data["meta"]["machine"]["cores"] >= 1
    assert (tmp_path / "latest.md").read_text().startswith("# secbus benchmark results (tiny mode)")

    # the README's Performance section is generated from that JSON, replacing itself on a second run
    readme_path = tmp_path / "README.md"
    readme_path.write_text("# project\n\nintro\n")
    for _ in range(2):
        assert readme.main(["--results", str(tmp_path / "latest.json"), "--write", str(readme_path)]) == 0
    text = readme_path.read_text()
    assert text.startswith("# project\n\nintro\n\n## Performance\n")
    assert text.count("## Performance") == 1
    assert "in the calling thread, `emit()` itself" in text


def test_command_line_rejects_an_unknown_section(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--only", "nope", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown section(s) nope" in proc.stderr


def test_a_finished_broker_is_waited_for_down_to_its_last_child_process():
    """bench_broker waits for every process below the broker (the consumer process's children
    outlive a SIGKILL of ingest briefly), so no measurement shares the cores with the last one's."""
    parent = subprocess.Popen(["bash", "-c", "sleep 0.5 & sleep 60 & wait"])
    try:
        family = wait_until(lambda: descendants(parent.pid) if len(descendants(parent.pid)) == 2 else None,
                            timeout=5, message="two child processes")
        assert set(children(parent.pid)) == family
        assert len(wait_gone(family, timeout=0.05)) == 2  # both still run at that deadline
        assert len(wait_gone(family, timeout=1.5)) == 1  # the short one is gone, the long one is left
    finally:
        for pid in descendants(parent.pid):
            os.kill(pid, signal.SIGKILL)
        parent.wait(5)
    assert wait_gone(family, timeout=5) == set()
