/**
 * The client's own `perf.sdk.stats` report (proto/EVENTS.md, `perf.sdk.stats`).
 *
 * Why: events the bus never received (dropped, written to the fallback,
 * waiting in the spool) are invisible to the broker unless the client says
 * so. Every `statsIntervalMs` an unref'd timer queues one report with the six
 * counters EVENTS.md lists; the metrics handler turns the latest one into
 * `secbus_sdk_<name>` gauges and the rule `perf-sdk-dropping-events` alerts on
 * `dropped > 0`. Same rules as the Python SDK (secbus_sdk/selfstats.py):
 *
 * - heartbeat: a report every interval even when nothing changed;
 * - `close()` (and the exit hooks) add a final report only when the counters
 *   changed since the last one, or with none sent yet when the client carried
 *   any event at all;
 * - counters are read before the report is queued (it never counts itself in
 *   `queued`); a full queue skips the report (never `dropped`, never the
 *   fallback, never blocking); once queued it is an ordinary event.
 */

export const STATS_TYPE = 'perf.sdk.stats';

/** EVENTS.md attr name -> key of `Client.stats()`. */
const ATTRS = [
  ['queued', 'queued'],
  ['spooled', 'spoolEvents'], // events in the disk spool now, not the running total
  ['dropped', 'dropped'],
  ['fallback', 'fallback'],
  ['replayed', 'replayed'],
  ['rejected', 'rejected'],
];

/** The report's attrs (integers) from a `stats()` snapshot. */
export function reportAttrs(stats) {
  const out = {};
  for (const [name, key] of ATTRS) out[name] = Math.trunc(Number(stats[key]) || 0);
  return out;
}

export function sameAttrs(a, b) {
  return ATTRS.every(([name]) => a[name] === b[name]);
}

/** Whether the client has handled any event at all. */
export function carriedAnything(stats) {
  return ['queued', 'sent', 'spooled', 'dropped', 'fallback', 'rejected', 'replayed'].some((k) => stats[k] > 0);
}
