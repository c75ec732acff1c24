"""Item 2: durable broker ingest against raw ZeroMQ, same payloads, same run.

Baseline: PUSH/PULL over loopback into a separate process that decodes every
body with ``msgpack.unpackb``: the ceiling for any Python receiver of these
bytes. Subject: the broker's ROUTER ingest with DEALER publishers speaking
protocol v1, every event validated, committed to the log and ACKed (a
publisher keeps 8 batches in flight, as the SDKs do). Publishers run in their
own processes, build their batches before the start signal, and the two
sides alternate repetitions. The broker runs without handlers here so the
figure is ingest as shipped minus the optional plugins (its always-on
consumers, the correlator and the live feed, still run); end-to-end with the
built-in handlers is item 3.
"""

from __future__ import annotations

from .config import Config
from .harness import interleave, ratio
from .loadgen import broker_ingest_rate, raw_pushpull_rate
from .result import Section, Table, Target

TARGET_EVENTS_PER_S = 150_000


def run(cfg: Config, broker=None) -> Section:
    sec = Section("ingest", "Durable ingest vs raw pyzmq PUSH/PULL + msgpack decoding")
    limit = cfg.ingest_time_limit
    table = Table("Events/s, median of interleaved runs", ["publishers", "batch", "raw PUSH/PULL + unpackb", "broker (ACKed after commit)", "ratio"])
    sec.tables.append(table)
    best = None
    for publishers in cfg.publishers:
        for batch in cfg.batches:
            details: dict = {"raw": [], "broker": []}
            # batches of 1 cost a round trip per event: a quarter of the events keeps the run short
            n = cfg.ingest_events_per_publisher // (4 if batch == 1 else 1)

            def raw(publishers=publishers, batch=batch, details=details, n=n):
                out = raw_pushpull_rate(publishers, batch, n, limit)
                details["raw"].append(out)
                return out["events_per_s"]

            runs = {"raw": raw}
            if broker is not None:
                def subject(publishers=publishers, batch=batch, details=details, n=n):
                    out = broker_ingest_rate(broker.ingest, publishers, batch, n, limit)
                    details["broker"].append(out)
                    return out["events_per_s"]
                runs["broker"] = subject
            res = interleave(runs, cfg.ingest_repeats or cfg.repeats, warmup=False)
            key = f"p{publishers}_b{batch}"
            fig = {"raw_events_per_s": res["raw"].as_dict(), "raw_runs": details["raw"]}
            row = [publishers, batch, res["raw"].median, None, None]
            if "broker" in res:
                r = ratio(res["broker"].median, res["raw"].median)
                fig.update(broker_events_per_s=res["broker"].as_dict(), broker_runs=details["broker"], ratio=r)
                row[3], row[4] = res["broker"].median, f"{r:.2f}"
                if best is None or res["broker"].median > best[0]:
                    best = (res["broker"].median, publishers, batch)
            sec.figures[key] = fig
            table.rows.append(row)
    if broker is None:
        sec.status = "partial"
        sec.notes.append("broker figures not measured: the broker (tests/support/broker.py start_broker) is not available yet")
    else:
        two_100 = sec.figures.get("p2_b100", {}).get("broker_events_per_s", {}).get("median")
        if two_100 is not None:
            name, value = "Durable ingest, 2 publishers x batch 100", two_100
        else:
            name, value = f"Durable ingest, best measured ({best[1]} publishers x batch {best[2]})", best[0]
        sec.targets.append(Target(name, TARGET_EVENTS_PER_S, value, "events/s", True,
                                  "the raw column is the ceiling of a Python receiver",
                                  why="one Python thread checks and stores each event (~12 us of CPU), on 2 cores "
                                  "shared with the publishers; the consumer process runs beside it (FINDINGS.md 1, 5)"))
    return sec
