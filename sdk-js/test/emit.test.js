// emit(): the event a caller gets for its arguments, a precise error for
// every kind of bad argument, and the trace it joins. No broker needed: the
// endpoint is a free port nobody listens on, and events are read from the
// client's queue before the sender runs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { Client, WireError, formatTraceparent, newSpanId, newTraceId, validateEvent } from '../src/index.js';
import { freePort, tempDir } from './support/broker.js';

const dirs = [];
const clients = [];
after(() => {
  for (const c of clients) c.closeSync();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function offlineClient(options = {}) {
  const dir = tempDir();
  dirs.push(dir);
  const client = new Client({ service: 'checkout', endpoint: `tcp://127.0.0.1:${await freePort()}`, spoolDir: dir, ...options });
  clients.push(client);
  return client;
}

/** The last event emit() queued. */
function lastQueued(client) {
  const q = client.queue;
  return q.items[(q.head + q.size - 1) % q.capacity];
}

test('emit returns a UUIDv7 id and queues a valid event with the source filled in', async () => {
  const client = await offlineClient({ host: 'web-1' });
  const before = BigInt(Date.now()) * 1_000_000n;
  const id = client.emit('authn.login', {
    outcome: 'failure', actor: { user: 'alice', ip: '203.0.113.7' }, attrs: { method: 'password', attempts: 3 },
    resource: 'account/42', reason: 'bad_password', severity: 'medium', durationUs: 120,
  });
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  const event = lastQueued(client);
  assert.equal(event.id, id);
  assert.deepEqual(event.source, { host: 'web-1', pid: process.pid, platform: 'node', sdk: '@secbus/sdk/0.1.0', service: 'checkout' });
  assert.equal(event.outcome, 'failure');
  assert.equal(event.duration_us, 120);
  assert.ok(event.ts >= before && event.ts <= BigInt(Date.now() + 1) * 1_000_000n, `ts ${event.ts} is now`);
  // The object is built in canonical key order: validating it changes nothing.
  const clean = Object.fromEntries(Object.entries(event).filter(([, v]) => v !== undefined));
  assert.deepEqual(Object.keys(validateEvent(clean)), Object.keys(clean));
  assert.equal(client.stats().queued, 1);
});

test('outcome defaults to success and absent fields stay absent', async () => {
  const client = await offlineClient();
  client.emit('authz.check');
  const event = lastQueued(client);
  assert.equal(event.outcome, 'success');
  for (const name of ['actor', 'attrs', 'reason', 'resource', 'severity', 'duration_us']) assert.equal(event[name], undefined, name);
});

test('every kind of bad argument throws a WireError naming the field and the value', async () => {
  const client = await offlineClient();
  const cases = [
    [['Authn.Login'], 'type', /"Authn.Login"/],
    [['login'], 'type', /"login"/],
    [[42], 'type', /42/],
    [['authn.login', { outcome: 'maybe' }], 'outcome', /"maybe"/],
    [['authn.login', { severity: 'urgent' }], 'severity', /"urgent"/],
    [['authn.login', { actor: 'alice' }], 'actor', /"alice"/],
    [['authn.login', { actor: { user: 7 } }], 'actor.user', /7/],
    [['authn.login', { attrs: [1, 2] }], 'attrs', /\[1,2\]/],
    [['authn.login', { attrs: { nested: { a: 1 } } }], 'attrs.nested', /nesting/],
    [['authn.login', { attrs: { list: [[1]] } }], 'attrs.list[0]', /nesting/],
    [['authn.login', { attrs: { 'bad key': 1 } }], 'attrs', /"bad key"/],
    [['authn.login', { attrs: { n: Number.NaN } }], 'attrs.n', /NaN/],
    [['authn.login', { attrs: { n: 2n ** 64n } }], 'attrs.n', /64-bit/],
    [['authn.login', { attrs: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, i])) }], 'attrs', /65 attrs/],
    [['authn.login', { resource: 'x'.repeat(5000) }], 'resource', /5000 bytes/],
    [['authn.login', { reason: 12 }], 'reason', /12/],
    [['authn.login', { durationUs: -1 }], 'duration_us', /-1/],
    [['authn.login', { durationUs: 1.5 }], 'duration_us', /1.5/],
    [['authn.login', { durationUs: 2n ** 63n }], 'duration_us', /9223372036854775808/],
    [['authn.login', { duration_us: 5 }], 'duration_us', /unknown emit\(\) field/],
    [['authn.login', 'failure'], 'fields', /"failure"/],
  ];
  for (const [args, field, pattern] of cases) {
    assert.throws(() => client.emit(...args), (err) => {
      assert.ok(err instanceof WireError, `${JSON.stringify(String(args))}: ${err}`);
      assert.equal(err.code, 'invalid');
      assert.equal(err.field, field, err.message);
      assert.match(err.message, pattern);
      return true;
    });
  }
  assert.equal(client.stats().queued, 0, 'nothing was queued for a bad call');
  assert.equal(client.stats().invalidInput, cases.length, 'each bad call is counted');
});

test('bad options throw a TypeError naming the option', () => {
  const cases = [
    [{}, /option service: required/],
    [{ service: 's', spoolDir: '/tmp/x', endpoint: 'http://x' }, /option endpoint/],
    [{ service: 's', queueSize: 0 }, /option queueSize/],
    [{ service: 's', spoolMaxBytes: 1000 }, /option spoolMaxBytes: at least 65536/],
    [{ service: 's', onFull: 'wait' }, /option onFull: expected "drop", "block" or "fallback", got "wait"/],
    [{ service: 's', onFull: 'fallback' }, /option fallback: required/],
    [{ service: 's', serverKey: 'short' }, /option serverKey/],
    [{ service: 's', batchSize: 5000 }, /option batchSize: at most 1000/],
    [{ service: 's', ackTimout: 5 }, /option ackTimout: unknown option/],
  ];
  for (const [options, pattern] of cases) assert.throws(() => new Client(options), (e) => e instanceof TypeError && pattern.test(e.message));
});

test('a valid traceparent gives the trace id and the parent id as span id', async () => {
  const client = await offlineClient();
  const traceId = newTraceId();
  const spanId = newSpanId();
  client.emit('authn.login', { traceparent: formatTraceparent(traceId, spanId) });
  const event = lastQueued(client);
  assert.equal(event.trace_id, traceId);
  assert.equal(event.span_id, spanId);
  assert.equal(client.stats().invalidTraceparent, 0);
});

test('an invalid traceparent starts a new trace and is counted', async () => {
  const client = await offlineClient();
  const bad = [
    'garbage',
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01', // zero trace id
    '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01', // zero parent id
    '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01', // uppercase
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', // version ff
    '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra', // v00 with more fields
  ];
  for (const tp of bad) {
    client.emit('authn.login', { traceparent: tp });
    assert.notEqual(lastQueued(client).trace_id, '4bf92f3577b34da6a3ce929d0e0e4736', tp);
    assert.match(lastQueued(client).trace_id, /^[0-9a-f]{32}$/);
  }
  assert.equal(client.stats().invalidTraceparent, bad.length);
  // A later version may carry more fields (W3C: parse what is known).
  client.emit('authn.login', { traceparent: '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra' });
  assert.equal(lastQueued(client).trace_id, '4bf92f3577b34da6a3ce929d0e0e4736');
});

test('the active OpenTelemetry span gives the trace when no traceparent is passed, across await', async () => {
  const manager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(manager);
  try {
    const client = await offlineClient();
    const traceId = newTraceId();
    const spanId = newSpanId();
    const span = trace.wrapSpanContext({ traceId, spanId, traceFlags: 1 });
    await context.with(trace.setSpan(context.active(), span), async () => {
      await new Promise((resolve) => setImmediate(resolve));
      client.emit('authn.login');
    });
    assert.equal(lastQueued(client).trace_id, traceId);
    assert.equal(lastQueued(client).span_id, spanId);
    // An explicit valid traceparent still wins over the span.
    const other = newTraceId();
    context.with(trace.setSpan(context.active(), span), () => client.emit('authn.login', { traceparent: formatTraceparent(other, newSpanId()) }));
    assert.equal(lastQueued(client).trace_id, other);
    // Outside the span: a new trace.
    client.emit('authn.login');
    assert.notEqual(lastQueued(client).trace_id, traceId);
  } finally {
    context.disable();
  }
});

test('without a traceparent or span every event starts its own trace', async () => {
  const client = await offlineClient();
  const seen = new Set();
  for (let i = 0; i < 100; i++) {
    client.emit('authn.login');
    seen.add(lastQueued(client).trace_id);
  }
  assert.equal(seen.size, 100);
});

test('ts follows the wall clock when it is stepped (checked once a second)', async () => {
  const client = await offlineClient();
  // Pretend the wall clock jumped an hour since the base was taken.
  client.tsBase -= 3_600_000_000_000n;
  client.emit('authn.login');
  const stale = lastQueued(client).ts;
  assert.ok(BigInt(Date.now()) * 1_000_000n - stale > 3_000_000_000_000n, 'within the second, the old base is used');
  client.clockCheckedMs -= 1000;
  client.emit('authn.login');
  const fresh = lastQueued(client).ts;
  const wall = BigInt(Date.now()) * 1_000_000n;
  assert.ok(fresh <= wall + 1_000_000n && wall - fresh < 50_000_000n, `ts ${fresh} follows the wall clock ${wall}`);
});
