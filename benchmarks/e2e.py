"""Item 3: end to end, with the built-in handlers running.

A broker runs with the built-in handlers (audit, metrics, alerting, alert-log)
plus ``bench-probe``, a third-party-style handler installed through its entry
point that measures ``now - event.ts`` for every event it is given:

* fixed rates (1k, 10k, 50k events/s, bounded durations): publishers send on
  a schedule (batches of ~5 ms of events, as an SDK's linger would), so a slow
  broker shows as latency, not as a lower offered rate; we record
  publish-to-ACK per batch and publish-to-handler per event, and sample every
  handler's and the correlator's lag from ``/healthz``;
* publish-to-ACK p99 at 20k events/s;
* a ladder of rising rates: the highest rate at which every handler's and the correlator's lag
  stays bounded (never more than one second of events behind during the run,
  and back to zero within 5 s after it);
* publish-to-alert: four failed ``authn.login`` for a fresh user, then the
  fifth (the default ``authn-brute-force`` threshold rule), timed until the
  alert arrives on the live feed.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid

import zmq

from secbus_sdk import wire

from . import components
from .brokers import bench_broker
from .config import Config
from .harness import summarize, wait_until
from .loadgen import collect, paced_load
from .payloads import make_event
from .result import Section, Table, Target, fmt

BUILTINS = ["audit", "metrics", "alerting", "alert-log"]
HANDLERS = BUILTINS + ["bench-probe"]
TARGET_E2E_RATE = 50_000
TARGET_ACK_P99_MS = 20.0
DRAIN_S = 5.0


def batch_for(rate: float) -> int:
    return max(1, min(1000, round(rate * 0.005)))


def publishers_for(rate: float) -> int:
    return 1 if rate <= 20_000 else 2


def _post(broker, path: str) -> None:
    req = urllib.request.Request(f"http://{broker.http}{path}", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


def probe(broker) -> dict:
    status, body = broker.get("/bench/probe")
    if status != 200:
        raise RuntimeError(f"GET /bench/probe answered {status}: is the bench-probe handler running? {body[:200]}")
    return json.loads(body)


def consumer_lags(broker) -> dict[str, int]:
    """Events behind the log head, per handler and for the correlator (a trace can only
    reach on_trace once the correlator has read its events: it must keep up too)."""
    health = broker.healthz()
    out = {}
    for name, h in (health.get("handlers") or {}).items():
        lag = h.get("lag")
        if isinstance(lag, dict):  # per stream
            lag = lag.get("events", max(lag.values(), default=0))
        out[name] = int(lag or 0)
    correlator = (health.get("correlator") or {}).get("lag") or {}
    if "events" in correlator:
        out["correlator"] = int(correlator["events"] or 0)
    return out


class LagSampler(threading.Thread):
    """Polls /healthz every 0.2 s and keeps each consumer's highest lag (handlers, correlator)."""

    def __init__(self, broker):
        super().__init__(daemon=True)
        self.broker = broker
        self.max: dict[str, int] = {}
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.wait(0.2):
            try:
                for name, lag in consumer_lags(self.broker).items():
                    self.max[name] = max(self.max.get(name, 0), lag)
            except Exception:  # noqa: BLE001 - a slow /healthz under load is a data point, not a failure
                pass

    def stop(self) -> dict[str, int]:
        self.stop_flag.set()
        self.join(5)
        return self.max


def fixed_rate(rate: float, duration: float, handlers: list[str] | None = None) -> dict:
    """One step on a fresh broker (so a step beyond capacity cannot spill into the next)."""
    handlers = HANDLERS if handlers is None else handlers
    with bench_broker(CONFIG, handlers, kill=True) as broker:
        return _fixed_rate(broker, rate, duration, probing="bench-probe" in handlers)


def _fixed_rate(broker, rate: float, duration: float, probing: bool = True) -> dict:
    sampler = LagSampler(broker)
    sampler.start()
    t_go, q, procs = paced_load(broker.ingest, rate, duration, batch_for(rate), publishers_for(rate))
    results = collect(q, procs, duration + 120)
    t_end = max(r["end"] for r in results)
    accepted = sum(r["accepted"] for r in results)
    drained = None
    try:
        # within DRAIN_S every consumer must be back to lag 0 (and the probe must have every event)
        drained = wait_until(lambda: (not probing or probe(broker)["count"] >= accepted)
                             and all(v == 0 for v in consumer_lags(broker).values()) and time.time(),
                             timeout=DRAIN_S + 1, interval=0.05)
    except TimeoutError:
        pass
    max_lag = sampler.stop()
    if drained is None and probing:
        try:  # let the probe catch up a little more so its latency figures cover most events
            wait_until(lambda: probe(broker)["count"] >= accepted, timeout=15, interval=0.1)
        except TimeoutError:
            pass
    p = probe(broker) if probing else {"count": None}
    acks = sorted(x for r in results for x in r["ack_latencies_ms"])
    a = summarize(acks)
    return {
        "rate": rate, "duration_s": duration, "batch": batch_for(rate), "publishers": publishers_for(rate),
        "accepted": accepted, "sent": sum(r["sent_events"] for r in results),
        "errors": sum(r["errors"] for r in results), "unacked_batches": sum(r["unacked_batches"] for r in results),
        "publisher_max_lateness_ms": max(r["max_send_lateness_ms"] for r in results),
        "ack_ms": a, "handler_ms": {k: p.get(k) for k in ("p50_ms", "p90_ms", "p99_ms", "p100_ms")},
        "probe_count": p["count"], "max_lag": max_lag,
        "drain_s": (drained - t_end) if drained else None,
    }


def bounded(step: dict) -> bool:
    """Every consumer (handlers, correlator) kept up: lag never above one second of events, drained within 5 s, nothing lost."""
    if step["drain_s"] is None or step["drain_s"] > DRAIN_S or step["errors"] or step["unacked_batches"]:
        return False
    if step["publisher_max_lateness_ms"] > 1000:  # the offered rate itself was not reached
        return False
    return all(lag <= max(step["rate"], 1000) for lag in step["max_lag"].values())


def alert_latency(broker, trials: int) -> dict:
    if not broker.feed:
        raise RuntimeError("the broker has no live feed endpoint")
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"alert.")
    sub.connect(broker.feed)
    pub = broker.client(timeout=10)
    latencies = []
    missed = 0
    try:
        for trial in range(trials + 1):  # trial 0 warms up the subscription (slow joiner)
            user = f"bench-alert-{uuid.uuid4().hex[:12]}"
            first = [make_event(user=user, outcome="failure", type_="authn.login") for _ in range(4)]
            pub.publish(first, seq=trial * 2 + 1)
            fifth = make_event(user=user, outcome="failure", type_="authn.login")
            t0 = time.time_ns()
            fifth["ts"] = t0
            pub.publish([fifth], seq=trial * 2 + 2)
            deadline = time.monotonic() + 10
            got = None
            while time.monotonic() < deadline and got is None:
                if not sub.poll(100):
                    continue
                topic, body = sub.recv_multipart()
                alert = wire.unpack(body)
                if fifth["id"] in (alert.get("event_ids") or []) or user in json.dumps(alert.get("group")):
                    got = time.time_ns()
            if trial == 0:
                continue
            if got is None:
                missed += 1
            else:
                latencies.append((got - t0) / 1e6)
    finally:
        sub.close(0)
        pub.close()
    return {"alert_ms": summarize(latencies), "missed": missed, "trials": trials}


CONFIG = {"handlers": {"bench-probe": {"max_samples": 3_000_000}}}


def ladder(cfg: Config, known: dict) -> tuple[dict, int]:
    """Rising rates until one is not bounded, then bisect between the last good and that one."""
    steps: dict = {}
    best, bad = 0, None
    for rate in cfg.ladder_rates:
        step = known.get(rate) or fixed_rate(rate, cfg.e2e_duration)
        steps[rate] = step
        if bounded(step):
            best = rate
        else:
            bad = rate
            break
    for _ in range(cfg.ladder_bisect if bad else 0):
        mid = int(round((best + bad) / 2, -2))
        if mid in (best, bad):
            break
        step = fixed_rate(mid, cfg.e2e_duration)
        steps[mid] = step
        if bounded(step):
            best = mid
        else:
            bad = mid
    return steps, best


def run(cfg: Config) -> Section:
    sec = Section("e2e", "End to end with the built-in handlers: latency at fixed rates, highest bounded rate, alerts")
    if components.broker_support() is None:
        return sec.skip("no broker yet")
    components.ensure_probe_installed()
    with bench_broker(CONFIG, HANDLERS, kill=True) as broker:
        try:
            probe(broker)
        except Exception as exc:  # noqa: BLE001
            return sec.skip(f"the broker does not run handlers yet ({exc})")
        try:
            al = alert_latency(broker, cfg.alert_trials)
            sec.figures["alert"] = al
        except Exception as exc:  # noqa: BLE001
            al = None
            sec.status = "partial"
            sec.notes.append(f"publish-to-alert not measured: {exc}")
    rates = sorted(set(cfg.e2e_rates) | {cfg.ack_rate})
    steps = {}
    table = Table(f"Fixed rates, {cfg.e2e_duration:g} s each on a fresh broker (batches of ~5 ms of events)",
                  ["events/s", "pubs x batch", "ACK p50 (ms)", "ACK p99 (ms)", "handler p50 (ms)", "handler p99 (ms)",
                   "max lag (events)", "drained after (s)", "lag bounded"])
    for rate in rates:
        step = fixed_rate(rate, cfg.e2e_duration)
        steps[rate] = step
        table.rows.append([rate, f"{step['publishers']} x {step['batch']}", step["ack_ms"].get("p50"), step["ack_ms"].get("p99"),
                           step["handler_ms"]["p50_ms"], step["handler_ms"]["p99_ms"], max(step["max_lag"].values(), default=0),
                           step["drain_s"], "yes" if bounded(step) else "NO"])
    sec.tables.append(table)
    sec.figures["fixed_rates"] = steps
    # publish-to-ACK at the target rate: interleaved repetitions with and without handlers, medians
    reps = {"with": [steps[cfg.ack_rate]], "without": []}
    for i in range(max(1, min(cfg.repeats, 3))):
        order = ("without", "with") if i % 2 == 0 else ("with", "without")
        for kind in order:
            if kind == "with" and i == 0:
                continue  # the fixed-rate step above is the first repetition with handlers
            reps[kind].append(fixed_rate(cfg.ack_rate, cfg.e2e_duration, handlers=None if kind == "with" else []))
    sec.figures["ack_rate_repetitions"] = reps
    at = Table(f"Publish-to-ACK at {cfg.ack_rate:,} events/s, interleaved repetitions on fresh brokers",
               ["broker", "ACK p50 by run (ms)", "ACK p99 by run (ms)", "median p99 (ms)"])
    med = {}
    for kind in ("with", "without"):
        p99s = [r["ack_ms"].get("p99") for r in reps[kind] if r["ack_ms"].get("p99") is not None]
        med[kind] = sorted(p99s)[len(p99s) // 2] if p99s else None
        at.rows.append(["built-in handlers" if kind == "with" else "no handlers (ingest, correlator, feed)",
                        ", ".join(fmt(r["ack_ms"].get("p50")) for r in reps[kind]),
                        ", ".join(fmt(r["ack_ms"].get("p99")) for r in reps[kind]), med[kind]])
    sec.tables.append(at)
    sec.targets.append(Target(f"publish-to-ACK p99 at {cfg.ack_rate:,} events/s (built-in handlers running)",
                              TARGET_ACK_P99_MS, med["with"], "ms", False,
                              "median of runs", why="ingest and the consumer process share 2 cores with the publishers; handlers run niced in their own process (FINDINGS.md 5)"))
    sec.targets.append(Target(f"publish-to-ACK p99 at {cfg.ack_rate:,} events/s (no handlers: ingest, correlator, feed)",
                              TARGET_ACK_P99_MS, med["without"], "ms", False,
                              "median of runs", why="per-event Python work in the ingest thread (FINDINGS.md 1, 5)"))
    lsteps, best = ladder(cfg, steps)
    lt = Table("Rate ladder: does every consumer (handlers, correlator) keep up? (rising, then bisecting)",
               ["events/s", "accepted", "max lag by consumer", "drained after (s)", "bounded"])
    for rate, step in lsteps.items():
        lt.rows.append([rate, step["accepted"], ", ".join(f"{k} {v:,}" for k, v in sorted(step["max_lag"].items())),
                        step["drain_s"], "yes" if bounded(step) else "NO"])
    sec.tables.append(lt)
    sec.figures["ladder"] = lsteps
    sec.figures["highest_bounded_rate"] = best
    sec.targets.append(Target("End to end with built-in handlers (highest bounded rate)", TARGET_E2E_RATE, float(best),
                              "events/s", True, "bounded: lag never above 1 s of events, 0 again within 5 s",
                              why="the whole machine: ingest, the consumer process, the correlator and the audit writer need ~43 us of CPU per event together, so 2 cores shared with the publishers are full near 40k; the handlers with on_trace (alerting, metrics) fall behind first (FINDINGS.md 10)"))
    if al is not None:
        sec.tables.append(Table("Publish-to-alert (threshold rule authn-brute-force, 5th failed login -> alert on the live feed)",
                                ["trials", "missed", "p50 (ms)", "p99 (ms)", "max (ms)"],
                                [[al["trials"], al["missed"], al["alert_ms"].get("p50"), al["alert_ms"].get("p99"), al["alert_ms"].get("max")]]))
    sec.notes.append("handler latency is measured by bench-probe, which runs behind its own cursor like each built-in handler; "
                     "the built-ins' progress is their lag in /healthz; every step runs on a fresh broker")
    return sec
