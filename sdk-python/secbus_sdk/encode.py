"""The queued event (:class:`WireEvent`) and its msgpack encoding in the sender thread.

Why: the sender's CPU per event is what a verification pays on top of
``emit()`` (benchmarks/FINDINGS.md section 3).  ``emit()`` queues a
``WireEvent``, a msgspec Struct (built in C, no dict per event); the sender
gives events without trace context a random trace (:func:`fill_trace_ids`)
and msgspec encodes a whole batch in one C call: ~0.2-0.6 us per event,
against 2-4 us for the hand-written pure-Python encoder this replaced.

The bytes are the shared codec's canonical packing (``wire.pack`` of the
validated event; ``tests/sdk/test_client_unit.py`` checks it over random
events): msgspec writes a Struct's fields in declaration order, declared here
in canonical order (``kw_only``, so required fields may follow optional
ones); fields left ``None`` are omitted (``omit_defaults``); the keys of
``actor`` and ``attrs`` are sorted (``order="deterministic"``: code point
order, as ``sorted()``); integers take their smallest form, floats float64 and
strings the str types, as msgpack-python writes them.  ``emit()`` already made
attr values canonical (integral floats as ints).  ``source``, the same for
every event of a client, is packed once (``msgspec.Raw``).
"""

from __future__ import annotations

import random
from typing import Any

import msgspec

from .event import new_span_id, new_trace_id

_getrandbits = random.getrandbits
_randbytes = random.randbytes
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


class WireEvent(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """One queued event, fields in canonical key order.

    ``trace_id``/``span_id``: hex strings (a ``traceparent``), ints (an
    OpenTelemetry span, formatted by :func:`fill_trace_ids`) or ``None``
    (no context: a new random trace).  ``gc=False``: the values are strings,
    numbers and flat dicts of scalars, which cannot form a cycle."""

    actor: Any = None
    attrs: Any = None
    duration_us: Any = None
    id: str
    outcome: str
    reason: Any = None
    resource: Any = None
    severity: Any = None
    source: Any
    span_id: Any = None
    trace_id: Any = None
    ts: int
    type: str
    v: int


def fill_trace_ids(events: list[WireEvent]) -> None:
    """Give every event its final ``trace_id``/``span_id`` strings (idempotent).

    New traces use the fast PRNG, as OpenTelemetry's SDK does: trace ids must be
    unique, not secret (``random`` is reseeded in a forked child by Python itself).
    The common batch (no event has context) is cut into ids in C: one draw of
    random bytes per kind of id, ``bytes.hex`` with a space between ids and
    ``split`` (~3,600 CPU instructions per event in callgrind, against ~5,000
    drawing and slicing id by id)."""
    fresh = [ev for ev in events if ev.trace_id is None]
    n = len(fresh)
    if n and n == len(events):
        traces = _randbytes(16 * n).hex(" ", 16)
        spans = _randbytes(8 * n).hex(" ", 8)
        if _ZERO_TRACE not in traces and _ZERO_SPAN not in spans:  # else id by id, below
            for ev, trace, span in zip(fresh, traces.split(), spans.split()):
                ev.trace_id = trace
                ev.span_id = span
            return
    _fill_each(events, n)


def _fill_each(events: list[WireEvent], count: int) -> None:
    """Events with and without context mixed, or a draw with a zero run: id by id."""
    bits = ""
    at = 0
    for ev in events:
        tid = ev.trace_id
        if tid is None:
            if at == len(bits):
                n = max(count, 1)
                bits = "%0*x" % (48 * n, _getrandbits(192 * n))
                at = 0
            trace, span = bits[at : at + 32], bits[at + 32 : at + 48]
            at += 48
            if trace == _ZERO_TRACE or span == _ZERO_SPAN:
                trace, span = new_trace_id(), new_span_id()  # from the OS
            ev.trace_id = trace
            ev.span_id = span
        elif tid.__class__ is int:
            ev.trace_id = "%032x" % tid
            ev.span_id = "%016x" % ev.span_id


class EventEncoder:
    """Canonical msgpack of queued events: a whole batch (an array) or one event."""

    def __init__(self, source: dict):
        self._encode = msgspec.msgpack.Encoder(order="deterministic").encode
        self.source = msgspec.Raw(self._encode(dict(sorted(source.items()))))

    def batch(self, events: list[WireEvent]) -> bytes:
        """The msgpack array of ``events``; raises what msgspec raises on an unencodable value."""
        fill_trace_ids(events)
        return self._encode(events)

    def one(self, event: WireEvent) -> bytes:
        fill_trace_ids([event])
        return self._encode(event)
