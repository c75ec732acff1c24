/**
 * `Client`: the public surface of the SDK (emit, verify, flush, close, stats).
 *
 * `emit()` is on the caller's hottest path (signature checks, logins), so it
 * does the least that keeps the guarantees: check the caller's arguments
 * (a bad argument is the caller's bug and throws, naming the field), take
 * the ids and the time, build the event object already in canonical key
 * order, push it on a bounded ring, and schedule the sender only when a batch
 * is full or the linger timer is not yet armed. Encoding and I/O happen in
 * the sender (sender.js). Trouble with the bus never throws.
 *
 * Full-queue policies (`onFull`), and why each exists:
 *   drop      protects the caller's latency; the loss is counted (`dropped`).
 *   block     for compliance users who may not lose a record: `emit()`
 *             returns a Promise that resolves once the event is queued
 *             (FIFO, bounded by `blockTimeout`).
 *   fallback  bounds latency without a silent loss: the event is written
 *             synchronously to a JSONL file or handed to a function.
 * The queue fills only when the broker is unreachable *and* the spool is
 * full, or when the sender cannot keep up.
 *
 * Process life: the client never keeps Node alive (timers unref'd, socket
 * read only while waiting for a reply); on `beforeExit` it closes itself
 * (flush within `exitTimeout`, spool the rest), and on `exit` (including
 * `process.exit()`) it writes whatever is still unacknowledged to the spool
 * synchronously. SIGTERM is the application's: see README.md.
 */

import os from 'node:os';
import path from 'node:path';
import { debuglog } from 'node:util';
import { DEFAULT_LIMITS, WireError, show } from './wire.js';
import {
  OUTCOMES, SEVERITIES, checkActor, checkAttrs, checkStr, checkType, newEventId, validateFields,
} from './event.js';
import { resolveTrace } from './tracecontext.js';
import { RingQueue } from './queue.js';
import { Spool } from './spool.js';
import { Sender } from './sender.js';
import { makeFallback } from './fallback.js';
import { resolveCurveKeys } from './keys.js';

export const VERSION = '0.1.0';
export const SDK_NAME = `@secbus/sdk/${VERSION}`;

const DEFAULTS = Object.freeze({
  endpoint: 'tcp://127.0.0.1:7878',
  service: undefined,
  spoolDir: undefined,
  spoolMaxBytes: 256 * 1024 * 1024,
  queueSize: 10000,
  batchSize: 256,
  lingerMs: 5,
  maxLingerMs: 20,
  ackTimeout: 2000,
  maxInFlight: 8,
  backoffMax: 2000,
  onFull: 'drop',
  fallback: null,
  blockTimeout: null,
  exitTimeout: 2000,
  statsIntervalMs: 60000,
  host: undefined,
  serverKey: null,
  publicKey: null,
  secretKey: null,
  logger: undefined,
});

import { STATS_TYPE, carriedAnything, reportAttrs, sameAttrs } from './selfstats.js';

const EMIT_FIELDS = new Set(['outcome', 'actor', 'resource', 'reason', 'attrs', 'severity', 'durationUs', 'traceparent']);
const OUTCOME_SET = new Set(OUTCOMES);
const SEVERITY_SET = new Set(SEVERITIES);
const NO_FIELDS = Object.freeze({});
const KNOWN_TYPES_MAX = 1024;
const MIN_SPOOL_BYTES = 64 * 1024;

const trace = debuglog('secbus');

function defaultLogger() {
  let lastWarning = 0;
  return {
    debug: (msg) => trace(msg),
    warn: (msg) => {
      trace(msg);
      const now = Date.now();
      if (now - lastWarning >= 10000) {
        lastWarning = now;
        process.emitWarning(msg, 'SecbusWarning');
      }
    },
  };
}

function optionError(name, message) {
  return new TypeError(`option ${name}: ${message}`);
}

function positiveInt(options, name) {
  const value = options[name];
  if (!Number.isSafeInteger(value) || value <= 0) throw optionError(name, `expected a positive integer, got ${show(value)}`);
  return value;
}

function nonNegative(options, name) {
  const value = options[name];
  if (typeof value !== 'number' || !(value >= 0) || !Number.isFinite(value)) {
    throw optionError(name, `expected a number of milliseconds >= 0, got ${show(value)}`);
  }
  return value;
}

/** The default spool directory: $XDG_CACHE_HOME/secbus/spool/<service>, else ~/.cache/... */
export function defaultSpoolDir(service) {
  const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(cache, 'secbus', 'spool', service.replace(/[^A-Za-z0-9._-]/g, '_'));
}

// One pair of process listeners for every live client.
const live = new Set();
function onBeforeExit() {
  for (const client of live) client.close().catch(() => {});
}
function onExit() {
  for (const client of live) client.closeSync();
}
function track(client) {
  if (live.size === 0) {
    process.on('beforeExit', onBeforeExit);
    process.on('exit', onExit);
  }
  live.add(client);
}
function untrack(client) {
  live.delete(client);
  if (live.size === 0) {
    process.off('beforeExit', onBeforeExit);
    process.off('exit', onExit);
  }
}

function errorName(err) {
  if (err === null || typeof err !== 'object') return typeof err === 'string' ? 'Error' : typeof err;
  const ctor = err.constructor?.name;
  if (ctor && ctor !== 'Error' && ctor !== 'Object') return ctor;
  return typeof err.name === 'string' && err.name ? err.name : 'Error';
}

export class Client {
  /**
   * @param {import('../index.js').ClientOptions} options
   */
  constructor(options = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('new Client(options): options must be an object');
    for (const name of Object.keys(options)) {
      if (!(name in DEFAULTS)) throw optionError(name, `unknown option; known: ${Object.keys(DEFAULTS).join(', ')}`);
    }
    const o = { ...DEFAULTS };
    for (const [k, v] of Object.entries(options)) if (v !== undefined) o[k] = v;
    if (typeof o.service !== 'string' || o.service.length === 0) throw optionError('service', `required, a non-empty string; got ${show(o.service)}`);
    if (typeof o.endpoint !== 'string' || !/^(tcp|ipc):\/\/./.test(o.endpoint)) {
      throw optionError('endpoint', `expected tcp://HOST:PORT or ipc://PATH, got ${show(o.endpoint)}`);
    }
    for (const name of ['spoolMaxBytes', 'queueSize', 'batchSize', 'maxInFlight']) positiveInt(o, name);
    if (o.spoolMaxBytes < MIN_SPOOL_BYTES) throw optionError('spoolMaxBytes', `at least ${MIN_SPOOL_BYTES} (64 KiB), got ${o.spoolMaxBytes}`);
    for (const name of ['lingerMs', 'maxLingerMs', 'ackTimeout', 'backoffMax', 'exitTimeout']) nonNegative(o, name);
    if (o.ackTimeout <= 0) throw optionError('ackTimeout', `must be > 0, got ${o.ackTimeout}`);
    if (o.blockTimeout !== null) nonNegative(o, 'blockTimeout');
    if (o.statsIntervalMs !== null) nonNegative(o, 'statsIntervalMs');
    if (!['drop', 'block', 'fallback'].includes(o.onFull)) throw optionError('onFull', `expected "drop", "block" or "fallback", got ${show(o.onFull)}`);
    if (o.onFull === 'fallback' && (o.fallback === null || o.fallback === undefined)) {
      throw optionError('fallback', 'required with onFull "fallback": a file path or a function');
    }
    const curve = resolveCurveKeys(o);
    if (o.batchSize > DEFAULT_LIMITS.maxBatchEvents) throw optionError('batchSize', `at most ${DEFAULT_LIMITS.maxBatchEvents} (the protocol's batch limit), got ${o.batchSize}`);
    checkStr('service', o.service);

    this.options = Object.freeze(o);
    this.log = o.logger ?? defaultLogger();
    this.fallbackSink = o.fallback !== null ? makeFallback(o.fallback) : null;
    this.blocking = o.onFull === 'block';
    this.closed = false;
    this.closing = null;
    this.waiters = []; // block policy: events waiting for room, FIFO
    this.knownTypes = new Set();
    this.lingerTimer = null;
    // Adaptive linger (see schedule()): the current period and when the last one ended.
    this.lingerPeriodMs = o.lingerMs;
    this.maxLingerMs = Math.max(o.lingerMs, o.maxLingerMs);
    this.lingerEndedAt = -Infinity;
    this.immediate = null;
    this.urgent = 0; // flushes in progress: send partial batches at once
    this.flushWaiters = new Set();
    this.counters = {
      sent: 0, acked: 0, duplicate: 0, rejected: 0, spooled: 0, replayed: 0, dropped: 0, fallback: 0,
      connected: false, lastError: null, invalidTraceparent: 0, invalidInput: 0,
    };
    this.source = Object.freeze({
      host: o.host ?? os.hostname(), pid: process.pid, platform: 'node', sdk: SDK_NAME, service: o.service,
    });
    checkStr('host', this.source.host);
    // ns since the epoch = base + monotonic clock: one BigInt add per event, with the
    // precision of the monotonic clock. The base is checked against the wall clock once a
    // second (emit already reads Date.now() for the id) and follows it when it was stepped.
    this.tsBase = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n - process.hrtime.bigint();
    this.clockCheckedMs = Date.now();

    this.queue = new RingQueue(o.queueSize);
    this.spool = null;
    try {
      this.spool = new Spool(o.spoolDir ?? defaultSpoolDir(o.service), {
        maxBytes: o.spoolMaxBytes, warn: (m) => this.log.warn(m),
      }).open();
    } catch (err) {
      this.counters.lastError = `spool unavailable: ${err.message}; events wait in memory only`;
      this.log.warn(this.counters.lastError);
    }
    this.sender = new Sender({
      endpoint: o.endpoint,
      queue: this.queue,
      spool: this.spool,
      stats: this.counters,
      batchSize: o.batchSize,
      ackTimeoutMs: o.ackTimeout,
      maxInFlight: o.maxInFlight,
      backoffMaxMs: o.backoffMax,
      curve,
      log: this.log,
      onProgress: () => this.progress(),
      // A partial batch leaves when its linger period ends (or for a flush), not whenever
      // the sender wakes for something else (an ACK): fewer, fuller batches.
      mayCut: () => this.lingerTimer === null || this.urgent > 0 || this.queue.size >= this.options.batchSize,
    });
    this.onLinger = () => {
      this.lingerTimer = null;
      this.lingerEndedAt = performance.now();
      // A partial batch waited a whole period and traffic may go on: the next period
      // doubles, up to maxLingerMs (fewer, fuller batches; each costs far more than an event).
      const n = this.queue.size;
      if (n > 0 && n < this.options.batchSize) this.lingerPeriodMs = Math.min(this.lingerPeriodMs * 2, this.maxLingerMs);
      this.sender.kick();
    };
    this.onImmediate = () => {
      this.immediate = null;
      this.sender.kick();
    };
    // perf.sdk.stats self-reports (README.md, "Self-reports"): an unref'd timer, so it never keeps Node alive.
    this.lastReport = null;
    this.finalReported = false;
    this.statsTimer = null;
    if (o.statsIntervalMs) this.statsTimer = setInterval(() => this.reportStats(false), o.statsIntervalMs).unref();
    track(this);
    if (this.spool !== null && !this.spool.isEmpty) this.sender.kick(); // replay what an earlier process left
  }

  /**
   * Queue one event; returns its id (a UUIDv7), or with `onFull: "block"` a
   * Promise of it. Throws a WireError (code `invalid`, `.field`) for a bad
   * argument; never throws because of the bus.
   * @param {string} type
   * @param {object} [fields]
   */
  emit(type, fields = NO_FIELDS) {
    let event;
    try {
      event = this.build(type, fields);
    } catch (err) {
      this.counters.invalidInput++;
      throw err;
    }
    if (this.closed) {
      this.counters.dropped++;
      this.counters.lastError = 'emit() after close(): event dropped';
      return this.blocking ? Promise.resolve(event.id) : event.id;
    }
    if (this.blocking) {
      if (this.waiters.length === 0 && this.queue.push(event)) {
        this.schedule();
        return Promise.resolve(event.id);
      }
      return this.waitForRoom(event);
    }
    if (this.queue.push(event)) {
      this.schedule();
    } else {
      this.full(event);
    }
    return event.id;
  }

  /** Check the caller's arguments and build the event in canonical key order. */
  build(type, fields) {
    if (!this.knownTypes.has(type)) {
      checkType(type);
      if (this.knownTypes.size < KNOWN_TYPES_MAX) this.knownTypes.add(type);
    }
    if (fields === null || typeof fields !== 'object') {
      throw new WireError('invalid', `emit: the second argument must be an object of fields, got ${show(fields)}`, 'fields');
    }
    for (const key in fields) {
      if (!EMIT_FIELDS.has(key)) {
        throw new WireError('invalid', `${key}: unknown emit() field; known: ${[...EMIT_FIELDS].join(', ')}`, key);
      }
    }
    let { outcome, actor, attrs, severity, resource, reason, durationUs } = fields;
    if (outcome === undefined) outcome = 'success';
    else if (!OUTCOME_SET.has(outcome)) validateFields({ outcome });
    if (severity !== undefined && !SEVERITY_SET.has(severity)) validateFields({ severity });
    if (actor !== undefined) actor = checkActor(actor);
    if (attrs !== undefined) attrs = checkAttrs(attrs);
    if (resource !== undefined) checkStr('resource', resource);
    if (reason !== undefined) checkStr('reason', reason);
    if (durationUs !== undefined && !(Number.isSafeInteger(durationUs) && durationUs >= 0)) validateFields({ duration_us: durationUs }); // BigInt: full range check
    const { traceId, spanId, invalid } = resolveTrace(fields.traceparent);
    if (invalid) {
      this.counters.invalidTraceparent++;
      this.log.debug(`invalid traceparent ignored: ${show(fields.traceparent)}`);
    }
    const nowMs = Date.now();
    if (nowMs - this.clockCheckedMs >= 1000 || nowMs < this.clockCheckedMs) this.checkClock(nowMs);
    return {
      actor,
      attrs,
      duration_us: durationUs,
      id: newEventId(nowMs),
      outcome,
      reason,
      resource,
      severity,
      source: this.source,
      span_id: spanId,
      trace_id: traceId,
      ts: this.tsBase + process.hrtime.bigint(),
      type,
      v: 1,
    };
  }

  /** Follow a step of the wall clock (NTP, manual) of more than 5 ms; drift below that is kept smooth. */
  checkClock(nowMs) {
    this.clockCheckedMs = nowMs;
    const wall = BigInt(nowMs) * 1_000_000n;
    const ours = this.tsBase + process.hrtime.bigint();
    const diff = wall > ours ? wall - ours : ours - wall;
    if (diff > 5_000_000n) this.tsBase += wall - ours;
  }

  /**
   * Wake the sender: at once for a full batch (or a flush), after the linger period
   * otherwise. Adaptive linger: the period is `lingerMs` for the first event after a pause
   * (no event for a whole period), and doubles at each period while events keep coming, up
   * to `maxLingerMs`; the timer is armed once per batch, so this costs one clock read then.
   */
  schedule() {
    if (this.queue.size >= this.options.batchSize || this.urgent > 0) {
      if (this.immediate === null) this.immediate = setImmediate(this.onImmediate).unref();
    } else if (this.lingerTimer === null) {
      if (performance.now() - this.lingerEndedAt > this.lingerPeriodMs) this.lingerPeriodMs = this.options.lingerMs;
      this.lingerTimer = setTimeout(this.onLinger, this.lingerPeriodMs).unref();
    }
  }

  /** The queue is full: apply `drop` or `fallback`. */
  full(event) {
    if (this.fallbackSink !== null && this.options.onFull === 'fallback') {
      try {
        this.fallbackSink.write(plain(event));
        this.counters.fallback++;
        return;
      } catch (err) {
        this.counters.lastError = `fallback failed: ${err.message}; event dropped`;
        this.log.warn(this.counters.lastError);
      }
    } else if (this.counters.dropped === 0 || this.counters.lastError === null || !this.counters.lastError.startsWith('queue full')) {
      this.counters.lastError = `queue full (${this.options.queueSize} events): event dropped`;
      this.log.warn(this.counters.lastError);
    }
    this.counters.dropped++;
  }

  waitForRoom(event) {
    return new Promise((resolve) => {
      const waiter = { event, resolve, timer: null };
      if (this.options.blockTimeout !== null) {
        waiter.timer = setTimeout(() => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          this.counters.dropped++;
          this.counters.lastError = `emit() waited ${this.options.blockTimeout} ms for room: event dropped`;
          this.log.warn(this.counters.lastError);
          resolve(event.id);
        }, this.options.blockTimeout);
      }
      this.waiters.push(waiter);
      if (this.immediate === null) this.immediate = setImmediate(this.onImmediate).unref();
    });
  }

  /** Called by the sender after it moved something: admit waiters, settle flushes. */
  progress() {
    let admitted = false;
    while (this.waiters.length > 0 && !this.queue.full) {
      const waiter = this.waiters.shift();
      if (waiter.timer !== null) clearTimeout(waiter.timer);
      this.queue.push(waiter.event);
      waiter.resolve(waiter.event.id);
      admitted = true;
    }
    if (admitted) this.schedule();
    if (this.flushWaiters.size > 0 && this.isIdle()) {
      for (const done of this.flushWaiters) done(true);
    }
  }

  isIdle() {
    return this.waiters.length === 0 && this.sender.idle;
  }

  /**
   * Send what is queued now and wait until the broker acknowledged it (and
   * the spool is empty). Resolves true, or false if `ms` passed first.
   * @param {number} [ms=5000]
   */
  flush(ms = 5000) {
    if (this.isIdle()) return Promise.resolve(true);
    if (this.sender.stopped) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.urgent++;
      let timer = null;
      const done = (ok) => {
        if (!this.flushWaiters.delete(done)) return;
        this.urgent--;
        if (timer !== null) clearTimeout(timer);
        resolve(ok);
      };
      this.flushWaiters.add(done);
      timer = setTimeout(() => done(this.isIdle()), ms); // ref'd: an awaited flush keeps Node alive until it settles
      this.sender.kick();
    });
  }

  /**
   * Flush within `ms` (`exitTimeout` by default; no wait when the broker is
   * known to be down), spool what is left, stop. Idempotent.
   * @param {number} [ms]
   */
  close(ms = this.options.exitTimeout) {
    if (this.closing !== null) return this.closing;
    this.reportFinal();
    this.closing = (async () => {
      const wait = this.sender.mode === 'down' ? 0 : ms;
      if (wait > 0) await this.flush(wait);
      this.closeSync();
    })();
    return this.closing;
  }

  /** Synchronous part of close (also the process `exit` hook): spool the rest, release everything. */
  closeSync() {
    if (this.closed) return;
    this.reportFinal(); // the exit hook's path; after close() it has already run
    this.closed = true;
    if (this.statsTimer !== null) clearInterval(this.statsTimer);
    if (this.closing === null) this.closing = Promise.resolve();
    if (this.lingerTimer !== null) clearTimeout(this.lingerTimer);
    if (this.immediate !== null) clearImmediate(this.immediate);
    for (const waiter of this.waiters) {
      if (waiter.timer !== null) clearTimeout(waiter.timer);
      this.queue.push(waiter.event) || this.counters.dropped++;
      waiter.resolve(waiter.event.id);
    }
    this.waiters = [];
    try {
      this.sender.spoolRest();
    } catch (err) {
      this.counters.lastError = `close: could not spool the rest: ${err.message}`;
      this.log.warn(this.counters.lastError);
    } finally {
      // Whatever happened above, release the socket, the spool lock and the process hooks.
      this.sender.stop();
      try { this.spool?.close(); } catch { /* already reported by the spool */ }
      try { this.fallbackSink?.close(); } catch { /* nothing left to do */ }
      for (const done of [...this.flushWaiters]) done(false);
      untrack(this);
    }
  }

  /**
   * Wrap a check: time `fn`, emit `success`, `failure` (via `v.fail(reason)`,
   * a `failOn` error class, or a falsy result with `falsyIsFailure`) or
   * `error` (the error's class name as reason) with `durationUs`, and return
   * or rethrow exactly what `fn` does. Works for sync and async functions.
   * @param {string} type
   * @param {(v: {fail(reason?: string): void}) => any} fn
   * @param {object} [options] emit fields plus `failOn` and `falsyIsFailure`
   */
  verify(type, fn, options = NO_FIELDS) {
    if (typeof fn !== 'function') throw new TypeError(`verify(type, fn): fn must be a function, got ${show(fn)}`);
    const { failOn = [], falsyIsFailure = false, ...fields } = options;
    const classes = Array.isArray(failOn) ? failOn : [failOn];
    this.build(type, fields); // check the arguments before running the check: a bad one must not run it
    const handle = {
      failed: null,
      fail(reason = 'failed') {
        handle.failed = String(reason);
      },
    };
    const start = process.hrtime.bigint();
    const record = (outcome, reason) => {
      const durationUs = Number((process.hrtime.bigint() - start) / 1000n);
      const out = { ...fields, outcome, durationUs };
      if (reason !== undefined) out.reason = reason;
      const r = this.emit(type, out);
      if (r instanceof Promise) r.catch(() => {});
    };
    const onValue = (value) => {
      if (handle.failed !== null) record('failure', handle.failed);
      else if (falsyIsFailure && !value) record('failure', 'falsy_result');
      else record('success', fields.reason);
    };
    const onError = (err) => {
      const failure = classes.some((c) => typeof c === 'function' && err instanceof c);
      if (handle.failed !== null) record('failure', handle.failed);
      else record(failure ? 'failure' : 'error', errorName(err));
    };
    let result;
    try {
      result = fn(handle);
    } catch (err) {
      onError(err);
      throw err;
    }
    if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
      return result.then((value) => {
        onValue(value);
        return value;
      }, (err) => {
        onError(err);
        throw err;
      });
    }
    onValue(result);
    return result;
  }

  /**
   * Queue one `perf.sdk.stats` event with the counters EVENTS.md lists (see selfstats.js for the
   * rules: heartbeat every interval, final only when changed, never subject to `onFull`).
   * Returns true if a report was queued.
   * @param {boolean} final
   */
  reportStats(final) {
    if (this.closed) return false;
    const stats = this.stats();
    const attrs = reportAttrs(stats);
    if (final && (this.lastReport !== null ? sameAttrs(attrs, this.lastReport) : !carriedAnything(stats))) return false;
    const dropping = attrs.dropped > 0;
    const event = this.build(STATS_TYPE, { outcome: dropping ? 'failure' : 'success', severity: dropping ? 'high' : 'info', attrs });
    if (!this.queue.push(event)) return false; // full: skipped, never counted as dropped, never blocks
    this.lastReport = attrs;
    this.schedule();
    return true;
  }

  reportFinal() {
    if (this.statsTimer === null || this.finalReported) return;
    this.finalReported = true;
    try {
      this.reportStats(true);
    } catch (err) {
      this.log.warn(`perf.sdk.stats final report failed: ${err.message}`);
    }
  }

  /** Counters and state (README.md, "stats()"). */
  stats() {
    const c = this.counters;
    return {
      queued: this.queue.size + this.waiters.length,
      sent: c.sent,
      acked: c.acked,
      duplicate: c.duplicate,
      rejected: c.rejected,
      spooled: c.spooled,
      replayed: c.replayed,
      dropped: c.dropped,
      fallback: c.fallback,
      connected: c.connected,
      lastError: c.lastError,
      invalidTraceparent: c.invalidTraceparent,
      invalidInput: c.invalidInput,
      inFlight: this.sender.inFlight.size,
      held: this.sender.held,
      spoolBytes: this.spool?.bytes ?? 0,
      spoolEvents: this.spool?.events ?? 0,
      spoolTorn: this.spool?.torn ?? 0,
      spoolDir: this.spool?.dir ?? null,
    };
  }
}

/** The event without its absent (undefined) fields, for the fallback sink. */
function plain(event) {
  const out = {};
  for (const key of Object.keys(event)) if (event[key] !== undefined) out[key] = event[key];
  return out;
}
