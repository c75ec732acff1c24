"""Item 5: broker memory with a large backlog behind a deliberately slow handler.

The broker runs one handler, ``bench-probe`` with ``sleep_ms`` set, under the
``block`` lag policy: it consumes a few hundred events per second, so nearly
everything published stays unconsumed behind its cursor. The backlog must
live on disk (the log), not in memory: we publish the backlog as fast as
ingest takes it and read the broker's RSS (``VmRSS``) and peak (``VmHWM``)
from ``/proc/<pid>/status`` before, during and after.  The broker is two
processes (ingest, and the consumer process it forks): every figure is the sum
over both, which counts the pages they still share after the fork twice, so
it errs high.

Quick mode uses a smaller backlog than the 1M-event target and says so; the
figure that matters is whether RSS grows with the backlog at all.
"""

from __future__ import annotations

import os
import threading

from . import components
from .brokers import bench_broker
from .config import Config
from .e2e import consumer_lags
from .loadgen import broker_ingest_rate
from .result import Section, Table, Target

TARGET_RSS_MB = 300.0
TARGET_BACKLOG = 1_000_000


def _one_status_mb(pid: int) -> dict[str, float]:
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out


def broker_pids(pid: int) -> list[int]:
    """The broker and every process under it (the consumer process, the audit writer process)."""
    found = [pid]
    for parent in found:  # grows while it is walked: breadth first over the tree
        for task in _listdir(f"/proc/{parent}/task"):
            try:
                with open(f"/proc/{parent}/task/{task}/children", encoding="ascii") as f:
                    found += [int(c) for c in f.read().split() if int(c) not in found]
            except OSError:
                pass
    return found


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def proc_status_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM summed over the broker's processes (a process gone meanwhile is skipped)."""
    total = {"VmRSS": 0.0, "VmHWM": 0.0}
    for one in broker_pids(pid):
        try:
            status = _one_status_mb(one)
        except OSError:
            if one == pid:
                raise
            continue
        for key in total:
            total[key] += status.get(key, 0.0)
    return total


class RssSampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.max_rss = 0.0
        self.samples: list[float] = []
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.wait(0.25):
            try:
                rss = proc_status_mb(self.pid)["VmRSS"]
            except OSError:
                return
            self.samples.append(rss)
            self.max_rss = max(self.max_rss, rss)


def run(cfg: Config) -> Section:
    sec = Section("memory", f"Broker RSS with a {cfg.backlog_events:,}-event backlog behind a slow handler")
    if components.broker_support() is None:
        return sec.skip("no broker yet")
    components.ensure_probe_installed()
    config = {
        "ingest": {"max_backlog": cfg.backlog_events * 2},
        "handlers": {"bench-probe": {"sleep_ms": 500, "batch_size": 100, "lag_policy": "block"}},
    }
    with bench_broker(config, ["bench-probe"]) as broker:
        pid = broker.proc.pid
        before = proc_status_mb(pid)
        sampler = RssSampler(pid)
        sampler.start()
        per_pub = cfg.backlog_events // 2
        load = broker_ingest_rate(broker.ingest, 2, 100, per_pub, time_limit=max(120.0, cfg.backlog_events / 5000))
        sampler.stop_flag.set()
        sampler.join(5)
        after = proc_status_mb(pid)
        lags = consumer_lags(broker)
        health = broker.healthz()
    backlog = lags.get("bench-probe")
    sec.figures.update(before_mb=before, after_mb=after, max_rss_mb=sampler.max_rss, load=load, backlog=backlog,
                       log=health.get("log"), rss_samples_mb=sampler.samples[::4])
    sec.tables.append(Table("Broker memory", ["state", "RSS (MB)", "peak RSS (MB)", "events behind the slow handler"], [
        ["idle, before publishing", before["VmRSS"], before["VmHWM"], 0],
        ["after publishing the backlog", after["VmRSS"], after["VmHWM"], backlog],
    ]))
    sec.notes.append(f"published {load['events']:,} events at {load['events_per_s']:,.0f} events/s "
                     f"({load['overloaded']} overloaded replies)")
    if cfg.backlog_events < TARGET_BACKLOG:
        sec.notes.append(f"{cfg.mode} mode uses a {cfg.backlog_events:,}-event backlog, not the target's 1M "
                         "(run BENCH_MODE=full for 1M); compare the idle and loaded rows to see whether RSS grows with the backlog")
    sec.targets.append(Target(f"Broker peak RSS with a {cfg.backlog_events:,}-event backlog", TARGET_RSS_MB,
                              after["VmHWM"], "MB", False, "target is for 1M events" if cfg.backlog_events < TARGET_BACKLOG else "",
                              why="sum over the ingest and consumer processes; the correlator's open traces, the log's tail cache (FINDINGS.md 4)"))
    return sec
