"""The events every benchmark sends: valid, realistic, and the same bytes for
the baseline and the subject.

One event is a signature verification as an application would report it
(actor, resource, reason, duration, two attrs), about 390 bytes of canonical
msgpack. Ids are fresh UUIDv7s, so a broker that deduplicates by id stores
each one; batches are PUB bodies exactly as an SDK would send them.

Events come in traces of ``TRACE_EVENTS`` (4) consecutive events sharing a
``trace_id``, each with its own ``span_id``: one request that checks a
token, a key, a permission and a signature. (One trace per event would be
the correlator's worst case: a trace opened and closed for every event.)
"""

from __future__ import annotations

import itertools
import os
import time

from secbus_sdk import wire
from secbus_sdk.event import new_event_id, new_span_id, new_trace_id, validate_event

_counter = itertools.count()
TRACE_EVENTS = 4
_trace = {"id": "", "left": 0}


def _trace_id() -> str:
    if _trace["left"] == 0:
        _trace["id"], _trace["left"] = new_trace_id(), TRACE_EVENTS
    _trace["left"] -= 1
    return _trace["id"]


def make_event(ts_ns: int | None = None, *, user: str | None = None, outcome: str = "success",
               type_: str = "authn.signature.verify", service: str = "bench") -> dict:
    """One valid event in canonical key order."""
    ts = time.time_ns() if ts_ns is None else ts_ns
    n = next(_counter)
    event = {
        "actor": {"ip": "10.1.2.3", "key_id": f"k-{n % 97}", "user": user or f"user{n % 1000}"},
        "attrs": {"algorithm": "ed25519", "message_bytes": 256},
        "duration_us": 61,
        "id": new_event_id(ts),
        "outcome": outcome,
        "reason": "ok" if outcome == "success" else "bad_signature",
        "resource": "doc/invoices/2026-11",
        "severity": "info",
        "source": {"host": "bench-host", "pid": os.getpid(), "platform": "python", "sdk": "bench/0", "service": service},
        "span_id": new_span_id(),
        "trace_id": _trace_id(),
        "ts": ts,
        "type": type_,
        "v": 1,
    }
    return event


def check_event(event: dict) -> dict:
    """Validate with the shared codec (raises WireError): the bench never sends junk."""
    return validate_event(event)


def pub_body(events: list[dict], seq: int) -> bytes:
    """A PUB body (canonical msgpack) holding ``events``."""
    return wire.pack_ordered({"events": events, "seq": seq})


def make_batches(total_events: int, batch: int, first_seq: int = 1) -> list[tuple[int, int, bytes]]:
    """``total_events`` fresh events packed into PUB bodies of ``batch`` events:
    a list of (seq, event count, body)."""
    out = []
    seq = first_seq
    for start in range(0, total_events, batch):
        count = min(batch, total_events - start)
        out.append((seq, count, pub_body([make_event() for _ in range(count)], seq)))
        seq += 1
    return out
