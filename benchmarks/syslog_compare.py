"""Item 4: what a user would otherwise use, side by side.

The alternative to secbus is Python's ``logging`` with a ``SysLogHandler``
over TCP into rsyslog, which writes a file. Both sides carry the same events
(the same fields; syslog gets them as one JSON line per event, as a careful
user would log them) and are timed the same way:

* per-call cost: each ``logger.info(...)`` / ``client.emit(...)`` call timed
  on its own, p50 and p99;
* events/s: from the first call until the last event is *in place*: written
  to rsyslog's file, or acknowledged by the broker after its commit.

Repetitions are interleaved (syslog, secbus, secbus, syslog, ...). Note what
the two numbers promise: syslog's TCP send returns once the kernel has the
bytes (a crash of rsyslog loses what it buffered; a down rsyslog makes
``emit`` raise or block inside ``logging``); secbus returns after a queue
append and reports durability by ACK.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import socket
import time

from secbus_sdk.event import new_event_id, new_span_id, new_trace_id

from . import components
from .config import Config
from .harness import interleave, summarize, wait_until
from .result import Section, Table
from .rsyslog import Rsyslogd

ACTOR = {"ip": "10.1.2.3", "key_id": "k-1", "user": "alice"}
ATTRS = {"algorithm": "ed25519", "message_bytes": 256}


def _syslog_logger(port: int) -> tuple[logging.Logger, logging.Handler]:
    handler = logging.handlers.SysLogHandler(address=("127.0.0.1", port), socktype=socket.SOCK_STREAM)
    handler.append_nul = False  # rsyslog's imtcp frames by LF; the formatter ends each record with one
    handler.setFormatter(logging.Formatter("secbus-bench: %(message)s\n"))
    logger = logging.getLogger(f"secbus.bench.syslog.{port}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, handler


def syslog_run(r: Rsyslogd, logger: logging.Logger, n: int, samples: list) -> float:
    """Log n events; return events/s until all n are in rsyslog's file."""
    start_lines = r.lines()
    clock = time.perf_counter_ns
    info = logger.info
    dumps = json.dumps
    t0 = time.perf_counter()
    for _ in range(n):
        c0 = clock()
        info("%s", dumps({"actor": ACTOR, "attrs": ATTRS, "id": new_event_id(), "outcome": "success",
                          "resource": "doc/invoices/2026-11", "service": "bench", "span_id": new_span_id(),
                          "trace_id": new_trace_id(), "ts": time.time_ns(), "type": "authn.signature.verify"},
                         separators=(",", ":")))
        samples.append(clock() - c0)
    wait_until(lambda: r.lines() >= start_lines + n, timeout=60, interval=0.005,
               message="rsyslog did not write every event within 60 s")
    return n / (time.perf_counter() - t0)


def secbus_run(client, n: int, burst: int, samples: list) -> float:
    """Emit n events (in bursts that fit the queue); events/s until all are ACKed."""
    clock = time.perf_counter_ns
    emit = client.emit
    t0 = time.perf_counter()
    done = 0
    while done < n:
        k = min(burst, n - done)
        for _ in range(k):
            c0 = clock()
            emit("authn.signature.verify", "success", actor=ACTOR, resource="doc/invoices/2026-11", attrs=ATTRS)
            samples.append(clock() - c0)
        done += k
        if done < n:
            wait_until(lambda: client.stats()["queued"] < burst, timeout=30, interval=0.001)
    if not client.flush(60.0):
        raise RuntimeError(f"secbus: not every event was acknowledged within 60 s: {client.stats()}")
    return n / (time.perf_counter() - t0)


def run(cfg: Config, broker=None) -> Section:
    sec = Section("syslog", "secbus vs Python logging + SysLogHandler (TCP) into rsyslog")
    try:
        r = Rsyslogd().start()
    except Exception as exc:  # noqa: BLE001
        return sec.skip(f"rsyslog could not be started: {exc}")
    Client = components.python_client()
    client = None
    try:
        logger, handler = _syslog_logger(r.port)
        syslog_samples: list[int] = []
        secbus_samples: list[int] = []
        runs = {"syslog": lambda: syslog_run(r, logger, cfg.syslog_events, syslog_samples)}
        if Client is not None and broker is not None:
            client = Client(endpoint=broker.ingest, service="bench-syslog",
                            spool_dir=components.scratch("spool"))
            runs["secbus"] = lambda: secbus_run(client, cfg.syslog_events, cfg.emit_burst, secbus_samples)
        else:
            sec.notes.append("secbus side not measured: " + ("no Python SDK Client yet" if Client is None else "no broker"))
        res = interleave(runs, cfg.repeats)
        # the warm-up round's samples are included in the distributions; they are a small share
        table = Table("Same events, interleaved runs (medians)",
                      ["path", "events/s (until stored)", "per call p50 (us)", "per call p99 (us)", "what 'stored' means"])
        s = summarize([x / 1000 for x in syslog_samples])
        table.rows.append(["logging + SysLogHandler/TCP -> rsyslog -> file", res["syslog"].median, s["p50"], s["p99"],
                           "line in rsyslog's file (not fsynced)"])
        sec.figures["syslog"] = {"events_per_s": res["syslog"].as_dict(), "per_call_us": s}
        if "secbus" in res:
            b = summarize([x / 1000 for x in secbus_samples])
            table.rows.append(["secbus Client.emit -> broker", res["secbus"].median, b["p50"], b["p99"],
                               "ACKed after commit to the broker's sqlite log"])
            sec.figures["secbus"] = {"events_per_s": res["secbus"].as_dict(), "per_call_us": b}
            sec.figures["secbus_client_stats"] = client.stats()
        sec.tables.append(table)
        sec.figures["rsyslogd"] = r.binary
    finally:
        if client is not None:
            client.close(10.0)
        r.stop()
    return sec
