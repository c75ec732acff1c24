"""Trace context for an event: an explicit W3C ``traceparent``, the active
OpenTelemetry span, or a new random trace, in that order.

``traceparent`` is parsed by hand with one regular expression because the
rules are a dozen lines of the W3C Trace Context spec (section 3.2) and the
OpenTelemetry propagator would cost a Context object per call.  As the spec
prescribes for receivers, an invalid value (wrong shape, upper-case hex, an
all-zero id, version ``ff``, extra fields on version 00) is ignored and a new
trace starts; the caller counts it.

The OpenTelemetry lookup uses only ``opentelemetry-api``: when no context is
attached (no OpenTelemetry in use) it costs one context-variable read.  With
the default runtime context that read is the ``ContextVar.get`` behind
``opentelemetry.context.get_current`` itself, called directly (two Python
frames fewer on ``emit()``'s path); any other runtime context goes through
``get_current``.
Ids are returned as the ints OpenTelemetry keeps and formatted later in the
sender thread, off the caller's path.
"""

from __future__ import annotations

import contextvars
import re

from opentelemetry import context as _otel_context_api, trace as _otel_trace

_TRACEPARENT_RE = re.compile(
    r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.ASCII | re.DOTALL
)
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_get_current_span = _otel_trace.get_current_span


def _context_getter():
    var = getattr(getattr(_otel_context_api, "_RUNTIME_CONTEXT", None), "_current_context", None)
    return var.get if isinstance(var, contextvars.ContextVar) else _otel_context_api.get_current


otel_context = _context_getter()
"""The current OpenTelemetry ``Context`` (empty, hence falsy, when nothing is attached)."""


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
    context = otel_context()
    if not context:  # nothing attached (no OpenTelemetry in use): skip the span lookup
        return None
    return span_ids_in(context)


def span_ids_in(context) -> tuple[int, int] | None:
    """``(trace_id, span_id)`` of the span in a non-empty OpenTelemetry ``context``, if valid."""
    ctx = _get_current_span(context).get_span_context()
    if ctx.is_valid:
        return ctx.trace_id, ctx.span_id
    return None


def format_trace_id(value: int) -> str:
    return f"{value:032x}"


def format_span_id(value: int) -> str:
    return f"{value:016x}"
