"""W3C traceparent rules as a receiver applies them, and the OpenTelemetry span lookup."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from secbus_sdk.tracecontext import current_span_ids, parse_traceparent

TID = "4bf92f3577b34da6a3ce929d0e0e4736"
SID = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    "value",
    [
        f"00-{TID}-{SID}-01",
        f"00-{TID}-{SID}-00",
        f"01-{TID}-{SID}-01-future-field",  # a later version may append fields
        f"cc-{TID}-{SID}-09",
    ],
)
def test_valid_traceparent_gives_trace_and_parent_id(value):
    assert parse_traceparent(value) == (TID, SID)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        f"00-{TID.upper()}-{SID}-01",  # upper-case hex is not allowed
        f"00-{'0' * 32}-{SID}-01",  # all-zero trace id
        f"00-{TID}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TID}-{SID}-01",  # version ff is forbidden
        f"00-{TID}-{SID}-01-extra",  # version 00 has exactly four fields
        f"00-{TID[:-1]}-{SID}-01",
        f"00-{TID}-{SID}-1",
        f"00_{TID}_{SID}_01",
        f" 00-{TID}-{SID}-01",
        None,
        42,
        b"00-" + TID.encode() + b"-" + SID.encode() + b"-01",
    ],
)
def test_invalid_traceparent_is_rejected(value):
    assert parse_traceparent(value) is None


def test_active_opentelemetry_span_is_found():
    assert current_span_ids() is None
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("check") as span:
        ctx = span.get_span_context()
        assert current_span_ids() == (ctx.trace_id, ctx.span_id)
    assert current_span_ids() is None
    assert trace.get_current_span().get_span_context().is_valid is False


def test_the_direct_context_read_is_opentelemetry_get_current():
    """emit() reads OpenTelemetry's context variable directly; it must see what get_current() sees."""
    from opentelemetry import context

    from secbus_sdk.tracecontext import otel_context

    assert otel_context() is context.get_current()
    with TracerProvider().get_tracer("test").start_as_current_span("check"):
        assert otel_context() is context.get_current()
        assert otel_context()  # a span is attached: the context is not empty
    assert otel_context() is context.get_current()
