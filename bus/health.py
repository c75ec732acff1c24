"""What a ``/healthz`` document says is wrong: its ``problems`` and ``secbus status``.

``/healthz`` reports figures; an operator (or a monitoring check) wants to know
whether anything needs them.  :func:`problems` names what does now: the broker
stopping or half up, writes to the event log failing (a full disk), a handler
failed, retrying, skipped or too far behind, the correlator restarting or
behind, a backlog near the bound past which publishers are turned away.
:func:`notes` names what happened and is over, or is worth a look without
being wrong: restarts, failures a handler got past, rejected
input, feed messages skipped, failed CURVE handshakes.  Counters never go back
down while a broker runs, so they are notes, never problems: a check that
stays red after the cause is gone is a check people learn to ignore.
"""

from __future__ import annotations

import datetime
from typing import Any

#: A handler or the correlator further behind than this (events, traces or alerts) is a problem.
DEFAULT_MAX_LAG = 100_000
#: ``ingest.backlog`` at this share of ``ingest.max_backlog`` is a problem: publishers are turned away at 100%.
BACKLOG_SHARE = 0.8
#: What a failing write to the event log means meanwhile (bus/log/write_failures.py).
WRITE_CONSEQUENCES = {
    "commit": "nothing is stored or ACKed; publishers get 'overloaded' and keep their events (SDK spool) until a "
              "commit works. A full disk? Free space where the data dir is (docs/operations.md, \"When the disk fills\")",
    "checkpoint": "the write-ahead log (events.db-wal) grows until a checkpoint works",
    "retention": "old events are not deleted, so the log grows past its retention bounds",
}
#: The data dir's file system with less than this share free is a problem: when it is full,
#: commits fail and publishers are turned away (docs/operations.md, "When the disk fills").
DISK_FREE_SHARE = 0.05
#: Handler states that need someone.
TROUBLED_STATES = {"failed": "failed", "retrying": "is retrying", "skipped": "was skipped"}


def most_behind(lag: dict[str, int] | None) -> tuple[int, str]:
    """(lag, stream) of the stream furthest behind; (0, "events") when there is none."""
    if not lag:
        return 0, "events"
    stream = max(lag, key=lambda s: lag[s])
    return lag[stream], stream


def problems(doc: dict[str, Any], max_lag: int = DEFAULT_MAX_LAG) -> list[str]:
    """One line per thing that needs someone now; empty when the broker is healthy."""
    found: list[str] = []
    status = doc.get("status")
    if status != "ok":
        found.append(f"broker status is {status!r}" + (": it is shutting down" if status == "stopping" else ""))
    for name, handler in sorted(doc.get("handlers", {}).items()):
        found.extend(_handler_problems(name, handler, max_lag))
    correlator = doc.get("correlator", {})
    if correlator.get("state") not in (None, "running", "starting"):  # starting: the first moments after start
        found.append(f"correlator is {correlator['state']} (traces are not being closed meanwhile)")
    lag, stream = most_behind(correlator.get("lag"))
    if lag > max_lag:
        found.append(f"correlator is {lag:,} {stream} behind (limit {max_lag:,}): traces close late")
    for operation, writes in sorted(doc.get("log", {}).get("writes", {}).items()):
        if writes.get("failing_since_ns"):
            found.append(f"event log: {operation}s failing since {_utc(writes['failing_since_ns'])} "
                         f"({writes.get('failures', 0):,} so far, last error: {writes.get('last_error')}): "
                         f"{WRITE_CONSEQUENCES.get(operation, 'see the broker log')}")
    disk = doc.get("log", {}).get("disk", {})
    free, size = disk.get("free_bytes"), disk.get("size_bytes")
    if isinstance(free, int) and isinstance(size, int) and size and free < DISK_FREE_SHARE * size:
        found.append(f"the data dir's file system is {100 - 100 * free / size:.0f}% full ({size_text(free)} free of "
                     f"{size_text(size)}): when it fills, commits fail and publishers are turned away; free space or "
                     f"lower log.retention_max_bytes")
    ingest = doc.get("ingest", {})
    backlog, bound = ingest.get("backlog", 0), ingest.get("max_backlog", 0)
    if bound and backlog >= BACKLOG_SHARE * bound:
        found.append(f"ingest backlog is {backlog:,} of max_backlog {bound:,}: at the bound publishers get "
                     f"'overloaded' and spool; the slowest block handler holds it (see its lag)")
    return found


def size_text(n: float) -> str:
    """``1.2 GiB`` for a number of bytes."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    step = 0
    while n >= 1024 and step < len(units) - 1:
        n /= 1024
        step += 1
    return f"{n:,.0f} B" if step == 0 else f"{n:,.1f} {units[step]}"


def _utc(ns: int) -> str:
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _handler_problems(name: str, handler: dict[str, Any], max_lag: int) -> list[str]:
    state = handler.get("state")
    if state in TROUBLED_STATES:
        why = handler.get("last_error") or handler.get("reason")
        failures = handler.get("failures")
        after = f" after {failures:,} failures" if state == "retrying" and failures else ""
        return [f"handler {name} {TROUBLED_STATES[state]}{after}" + (f": {why}" if why else "")]
    lag, stream = most_behind(handler.get("lag"))
    if lag > max_lag:
        return [f"handler {name} is {lag:,} {stream} behind (limit {max_lag:,})"]
    return []


def notes(doc: dict[str, Any]) -> list[str]:
    """One line per thing worth a look that is not wrong now (counters since the broker started)."""
    found: list[str] = []
    consumers = doc.get("consumers", {})
    if consumers.get("restarts"):
        found.append(f"the consumer process was started again {consumers['restarts']} times "
                     f"(last exit: {consumers.get('last_exit')}); the broker log says why")
    restarts = doc.get("correlator", {}).get("process", {}).get("restarts")
    if restarts:
        found.append(f"the correlator process was started again {restarts} times; the broker log says why")
    for name, handler in sorted(doc.get("handlers", {}).items()):
        if handler.get("state") == "running" and handler.get("failures"):
            found.append(f"handler {name} failed {handler['failures']:,} times and got past it "
                         f"(last: {handler.get('last_error')})")
        if handler.get("skipped"):
            found.append(f"handler {name} skipped {handler['skipped']:,} records (lag_policy drop)")
        if handler.get("log_errors"):
            found.append(f"handler {name}: reading the log or storing its cursor failed {handler['log_errors']:,} "
                         f"times (a full disk? the broker log says why)")
    for operation, writes in sorted(doc.get("log", {}).get("writes", {}).items()):
        if writes.get("failures") and not writes.get("failing_since_ns"):
            found.append(f"event log: {writes['failures']:,} {operation}s failed and later ones worked "
                         f"(last error: {writes.get('last_error')})")
    rejects = {code: n for code, n in doc.get("rejects", {}).items() if n}
    if rejects.get("internal"):
        found.append(f"{rejects['internal']:,} requests hit a broker bug (answered 'overloaded'; the traceback is in the broker log)")
    others = {code: n for code, n in rejects.items() if code != "internal"}
    if others:
        found.append("rejected: " + ", ".join(f"{n:,} {code}" for code, n in sorted(others.items())))
    skipped = doc.get("feed", {}).get("skipped")
    if skipped:
        found.append(f"the live feed skipped {skipped:,} records (a subscriber too slow to follow)")
    security = doc.get("security", {})
    if security.get("handshakes_denied"):
        found.append(f"{security['handshakes_denied']:,} CURVE handshakes denied: keys not on the allow-list "
                     f"(last: {security.get('last_denied')}; docs/security.md 3.6)")
    failed = doc.get("ingest", {}).get("handshakes_failed")
    if failed:
        found.append(f"{failed:,} handshakes failed at ingest: clients with a wrong server key or a denied key "
                     f"(docs/security.md 3.7)")
    return found
