"""Building valid committed events for the handler tests (as the broker delivers them)."""

from __future__ import annotations

import itertools
import time

from secbus_sdk.event import new_event_id, new_span_id, new_trace_id, validate_event

_seq = itertools.count(1)
SEC = 1_000_000_000


def make_event(type_: str = "authn.login", outcome: str = "success", *, seq: int | None = None, ts: int | None = None,
               user: str | None = None, ip: str | None = None, platform: str = "python", service: str = "web",
               severity: str | None = None, attrs: dict | None = None, trace_id: str | None = None,
               tenant: str = "default", duration_us: int | None = None, **extra) -> dict:
    ts = time.time_ns() if ts is None else ts
    event = {"v": 1, "id": new_event_id(ts), "ts": ts, "type": type_, "outcome": outcome,
             "trace_id": trace_id or new_trace_id(), "span_id": new_span_id(),
             "source": {"platform": platform, "sdk": f"secbus-sdk-{platform}/0.1.0", "service": service}}
    actor = {k: v for k, v in (("user", user), ("ip", ip)) if v is not None}
    if actor:
        event["actor"] = actor
    if severity:
        event["severity"] = severity
    if attrs is not None:
        event["attrs"] = attrs
    if duration_us is not None:
        event["duration_us"] = duration_us
    event.update(extra)
    event = validate_event(event)
    event.update(seq=next(_seq) if seq is None else seq, received_ns=ts, publisher="anonymous", tenant=tenant)
    return event
