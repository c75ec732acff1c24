/**
 * Which trace an event belongs to: W3C `traceparent`, else the active
 * OpenTelemetry span, else a new trace.
 *
 * The `traceparent` parser follows W3C Trace Context level 1 section 3.2 as
 * a receiver must: version `ff` is invalid, version `00` has exactly four
 * fields, a later version may carry more after a `-`, ids are lowercase hex
 * and not all zeros. An invalid header is ignored (a new trace starts) and
 * counted by the caller. The span id of the event is the header's parent id:
 * the span the event was recorded in.
 *
 * OpenTelemetry is read through `@opentelemetry/api` only, so any SDK (or
 * none) works; without a registered context manager the lookup costs a few
 * tens of nanoseconds and finds nothing.
 */

import { context, trace, isSpanContextValid } from '@opentelemetry/api';
import { newSpanId, newTraceId } from './event.js';

const TRACEPARENT_RE = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = '00000000000000000000000000000000';
const ZERO_SPAN = '0000000000000000';

/**
 * Parse a `traceparent` header value; returns `{traceId, spanId, flags}` or
 * null when it is not valid.
 * @param {unknown} value
 */
export function parseTraceparent(value) {
  if (typeof value !== 'string' || value.length < 55) return null;
  const m = TRACEPARENT_RE.exec(value);
  if (m === null) return null;
  const [, version, traceId, spanId, flags, rest] = m;
  if (version === 'ff') return null;
  if (version === '00' && rest !== undefined) return null;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return null;
  return { traceId, spanId, flags: parseInt(flags, 16) };
}

/** Format a `traceparent` header for a trace and span (sampled flag set). */
export function formatTraceparent(traceId, spanId, sampled = true) {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}

/** The active OpenTelemetry span's ids, or null. */
export function activeSpanIds() {
  const span = trace.getSpan(context.active());
  if (span === undefined) return null;
  const ctx = span.spanContext();
  return isSpanContextValid(ctx) ? { traceId: ctx.traceId, spanId: ctx.spanId } : null;
}

/** Result of `resolveTrace`: the ids to use and whether a given traceparent was invalid. */
export function resolveTrace(traceparent) {
  if (traceparent !== undefined && traceparent !== null) {
    const parsed = parseTraceparent(traceparent);
    if (parsed !== null) return { traceId: parsed.traceId, spanId: parsed.spanId, invalid: false };
    return { traceId: newTraceId(), spanId: newSpanId(), invalid: true };
  }
  const active = activeSpanIds();
  if (active !== null) return { traceId: active.traceId, spanId: active.spanId, invalid: false };
  return { traceId: newTraceId(), spanId: newSpanId(), invalid: false };
}
