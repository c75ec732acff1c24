"""Valid events for tests, built with the SDK's id helpers (no hand-written ids)."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from secbus_sdk.event import new_event_id, new_span_id, new_trace_id


def make_event(type: str = "authn.login", **fields: Any) -> dict:
    """A valid v1 event; keyword arguments override or add fields (``service=`` and
    ``platform=`` set ``source`` entries)."""
    source = {"platform": fields.pop("platform", "python"), "sdk": "secbus-test/0", "service": fields.pop("service", "tests")}
    event = {
        "v": 1,
        "id": new_event_id(),
        "ts": time.time_ns(),
        "type": type,
        "outcome": "success",
        "trace_id": new_trace_id(),
        "span_id": new_span_id(),
        "source": source,
    }
    event.update(fields)
    return event


def make_events(n: int, **fields: Any) -> list[dict]:
    return [make_event(**fields) for _ in range(n)]


def stored_row(event: dict, seq: int, received_ns: int = 1, publisher: str = "anonymous", tenant: str = "default") -> tuple:
    """``event`` as the log stores it (secbus.log.stored): what ``on_events(stored)`` is given."""
    return (seq, received_ns, publisher, tenant, msgspec.msgpack.encode(event))


def stored_trace(trace: dict, seq: int = 1) -> tuple:
    """``trace`` as ``on_trace(stored)`` is given it: ``(seq, msgpack of the trace without seq)``."""
    return (seq, msgspec.msgpack.encode({k: v for k, v in trace.items() if k != "seq"}))
