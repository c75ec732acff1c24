"""Trace context for an event: an explicit W3C ``traceparent``, the active
OpenTelemetry span, or a new random trace, in that order.

``traceparent`` is parsed by hand with one regular expression because the
rules are a dozen lines of the W3C Trace Context spec (section 3.2) and the
OpenTelemetry propagator would cost a Context object per call.  As the spec
prescribes for receivers, an invalid value (wrong shape, upper-case hex, an
all-zero id, version ``ff``, extra fields on version 00) is ignored and a new
trace starts; the caller counts it.

The OpenTelemetry lookup uses only ``opentelemetry-api``: when no context is
attached (no OpenTelemetry in use) it costs one context-variable read.
Ids are returned as the ints OpenTelemetry keeps and formatted later in the
sender thread, off the caller's path.
"""

from __future__ import annotations

import re

from opentelemetry import trace as _otel_trace
from opentelemetry.context import get_current as _otel_context

_TRACEPARENT_RE = re.compile(
    r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.ASCII | re.DOTALL
)
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_get_current_span = _otel_trace.get_current_span


def parse_traceparent(value: object) -> tuple[str, str] | None:
    """``(trace_id, parent_id)`` of a valid ``traceparent`` header value, else ``None``."""
    if type(value) is not str or len(value) > 512:
        return None
    m = _TRACEPARENT_RE.fullmatch(value)
    if m is None:
        return None
    version, trace_id, parent_id, _flags, rest = m.groups()
    if version == "ff":
        return None
    if version == "00" and rest is not None:
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return trace_id, parent_id


def current_span_ids() -> tuple[int, int] | None:
    """``(trace_id, span_id)`` as ints from the active OpenTelemetry span, if it is valid."""
    context = _otel_context()
    if not context:  # nothing attached (no OpenTelemetry in use): skip the span lookup
        return None
    ctx = _get_current_span(context).get_span_context()
    if ctx.is_valid:
        return ctx.trace_id, ctx.span_id
    return None


def format_trace_id(value: int) -> str:
    return f"{value:032x}"


def format_span_id(value: int) -> str:
    return f"{value:016x}"
