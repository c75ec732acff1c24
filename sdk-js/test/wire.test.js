// The codec's promises beyond the shared vectors: canonical order and integer
// forms in the cases JavaScript gets wrong by default, and a precise
// WireError (never a crash) for every kind of bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_LIMITS, Limits, MAGIC, WireError, checkPub, decodeFrames, encodeEvent, encodeFrames, EventBatch, pack, packOrdered,
  packPubBody, unpack,
} from '../src/wire.js';
import { Client } from '../src/index.js';
import { Scratch } from './support/scratch.js';
import { newEventId, newSpanId, newTraceId, validateEvent } from '../src/event.js';

const hex = (v) => pack(v).toString('hex');

test('map keys are ordered by UTF-8 bytes, not by UTF-16 units or integer-likeness', () => {
  // "\u{1F600}" (4 UTF-8 bytes, f0...) sorts after "\uE000" (ee...) in UTF-8 but before it in UTF-16.
  const bytes = pack({ '\u{1F600}': 1, '\uE000': 2 });
  assert.equal(bytes.toString('hex'), '82a3ee808002a4f09f988001');
  // JavaScript orders integer-like keys numerically: "9" before "10"; canonical is "10" before "9".
  assert.equal(hex({ 9: 1, 10: 2 }), '82a2313002a13901');
  assert.equal(hex(new Map([['b', 1], ['a', 2]])), '82a16102a16201');
});

test('integers take their smallest form whether Number or BigInt', () => {
  assert.equal(hex(5n), '05');
  assert.equal(hex(-1n), 'ff');
  assert.equal(hex(2 ** 32), 'cf0000000100000000');
  assert.equal(hex(-(2 ** 31) - 1), 'd3ffffffff7fffffff');
  assert.equal(hex(2n ** 64n - 1n), 'cfffffffffffffffff');
  assert.equal(hex(-0), '00');
  assert.equal(hex(2.0), '02');
  assert.equal(hex(0.5), 'cb3fe0000000000000');
  assert.equal(hex(2 ** 53), 'cb4340000000000000', 'integral float at 2^53 stays a float');
  assert.throws(() => pack(2n ** 64n), (e) => e instanceof WireError && /64-bit range/.test(e.message));
});

test('strings are always str, never bin; binary input is refused with a clear error', () => {
  assert.equal(hex('a'.repeat(32)), 'd920' + '61'.repeat(32));
  assert.equal(hex('é'), 'a2c3a9');
  assert.throws(() => pack(Buffer.from('x')), /binary values are not allowed/);
  assert.throws(() => pack({ f: () => 1 }), /cannot encode/);
});

test('decoding gives safe integers as Numbers and larger ones as BigInt', () => {
  assert.deepStrictEqual(unpack(Buffer.from('cf0000000100000000', 'hex')), 2 ** 32);
  assert.deepStrictEqual(unpack(Buffer.from('cf7fffffffffffffff', 'hex')), 2n ** 63n - 1n);
});

test('every kind of bad msgpack is a malformed WireError naming the problem', () => {
  const cases = [
    ['c70101ff', /ext type 1 is not allowed/],      // ext8
    ['d6ff00000000', /ext type -1 is not allowed/], // timestamp ext
    ['81 01 01'.replace(/ /g, ''), /map key: expected a string/],
    ['0101', /trailing bytes/],
    ['a3 61'.replace(/ /g, ''), /not valid msgpack/], // truncated string
    ['dd ffffffff'.replace(/ /g, ''), /not valid msgpack/], // array claiming 4G items
    ['c1', /not valid msgpack/], // never-used byte
  ];
  for (const [bytes, pattern] of cases) {
    assert.throws(() => unpack(Buffer.from(bytes, 'hex')), (e) => {
      assert.ok(e instanceof WireError, `${bytes}: ${e}`);
      assert.equal(e.code, 'malformed', bytes);
      assert.match(e.message, pattern);
      return true;
    });
  }
  const big = Buffer.alloc(DEFAULT_LIMITS.maxFrameBytes + 1);
  assert.throws(() => unpack(big), (e) => e.code === 'too_large');
});

test('frames: a PUB body built from pre-encoded events equals the canonical encoding', () => {
  const events = [{ a: 1 }, { b: 'x' }];
  const body = packPubBody(7, events.map((e) => pack(e)));
  assert.equal(body.toString('hex'), pack({ events, seq: 7 }).toString('hex'));
  const frames = encodeFrames('PUB', body);
  const [cmd, value] = decodeFrames(frames);
  assert.equal(cmd, 'PUB');
  assert.deepStrictEqual(checkPub(value, body.length), [7, events]);
});

test('frames: events encoded back to back (EventBatch) give the same PUB body, also after a split or a drop', () => {
  const events = [{ a: 1, v: 2 }, { b: 'x'.repeat(40), v: 2 }, { c: [1, 2], v: 2 }, { d: null, v: 2 }]; // canonical key order
  const batch = new EventBatch();
  for (const e of events) batch.add(e) && batch.keep();
  batch.drop(batch.add({ dropped: true, v: 2 }));
  const views = batch.take();
  assert.deepEqual(views.map((b) => b.toString('hex')), events.map((e) => packOrdered(e).toString('hex')));
  const expected = (list) => pack({ events: list, seq: 3 }).toString('hex');
  assert.equal(packPubBody(3, views).toString('hex'), expected(events));
  assert.equal(packPubBody(3, views.slice(2)).toString('hex'), expected(events.slice(2)));
  assert.equal(packPubBody(3, [views[0], views[2]]).toString('hex'), expected([events[0], events[2]]));
  assert.equal(batch.count, 0);
  // An event that cannot be encoded leaves nothing behind in the batch.
  assert.throws(() => batch.add({ a: 1, bad: Symbol('x'), v: 2 }));
  batch.add(events[1]);
  batch.keep();
  assert.deepEqual(batch.take()[0].toString('hex'), packOrdered(events[1]).toString('hex'));
});

test('frames: wrong count, magic, version and command are refused with their codes', () => {
  const body = pack({});
  const expect = (frames, code, pattern) => assert.throws(() => decodeFrames(frames), (e) => {
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  });
  expect([MAGIC, Buffer.from('PING')], 'malformed', /expected 3/);
  expect([Buffer.from('HELLO'), Buffer.from('PING'), body], 'malformed', /frame 0/);
  expect([Buffer.from('SECBUS2'), Buffer.from('PING'), body], 'unsupported_version', /SECBUS2/);
  expect([MAGIC, Buffer.from('PUSH'), body], 'malformed', /unknown command "PUSH"/);
  expect([MAGIC, Buffer.from('PING'), pack([1])], 'malformed', /expected a map/);
});

test('limits accept protocol and camelCase names and refuse unknown ones', () => {
  assert.equal(new Limits({ max_attrs: 3 }).maxAttrs, 3);
  assert.equal(DEFAULT_LIMITS.withOverrides({ maxAttrs: 2 }).maxAttrs, 2);
  assert.throws(() => new Limits({ max_bogus: 1 }), /unknown limit "max_bogus"/);
});

test('generated ids are a UUIDv7 carrying the time, and non-zero trace and span ids', () => {
  const ms = Date.UTC(2026, 0, 1);
  const id = newEventId(ms);
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(parseInt(id.replace(/-/g, '').slice(0, 12), 16), ms);
  const seen = new Set(Array.from({ length: 1000 }, () => newEventId()));
  assert.equal(seen.size, 1000);
  assert.match(newTraceId(), /^[0-9a-f]{32}$/);
  assert.match(newSpanId(), /^[0-9a-f]{16}$/);
});

test('a lone surrogate in a string is rejected, naming the field', () => {
  assert.throws(() => validateEvent({
    v: 1, id: newEventId(), ts: 1n, type: 'authn.login', outcome: 'success', trace_id: newTraceId(),
    span_id: newSpanId(), source: { platform: 'node', sdk: 'x', service: 's' }, resource: 'a\uD800b',
  }), (e) => e.code === 'invalid' && e.field === 'resource' && /lone surrogate/.test(e.message));
});

test('the event encoder writes the canonical bytes of every event the SDK builds', async (t) => {
  const scratch = new Scratch();
  t.after(() => scratch.cleanup());
  const c = scratch.client({ service: 'wire', endpoint: 'tcp://127.0.0.1:1', statsIntervalMs: 0 });
  let seed = 7;
  const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
  const scalars = [0, -1, 127, 128, -33, 2 ** 31, 2 ** 53 - 1, -(2n ** 63n), 2n ** 64n - 1n, 1.5, 2.0, true, false, null,
    '', 'x', 'é'.repeat(40), 'a'.repeat(31), 'b'.repeat(32), 'c'.repeat(300)];
  for (let i = 0; i < 600; i++) {
    const fields = { outcome: pick(['success', 'failure', 'error', 'unknown']) };
    if (rnd() < 0.6) {
      fields.actor = {};
      for (const k of ['user', 'key_id', 'ip', 'session']) if (rnd() < 0.5) fields.actor[k] = pick(['alice', 'k-1', '10.0.0.1', 'ü'.repeat(5)]);
    }
    if (rnd() < 0.7) {
      fields.attrs = {};
      for (const k of ['algorithm', 'message_bytes', 'Z', '_a', 'b.c', 'n:1', 'x-y']) {
        if (rnd() < 0.4) fields.attrs[k] = rnd() < 0.1 ? [pick(scalars.slice(0, 14)), pick(scalars.slice(0, 14))] : pick(scalars);
      }
    }
    if (rnd() < 0.4) fields.resource = pick(['doc/1', 'r'.repeat(100), 'ресурс']);
    if (rnd() < 0.4) fields.reason = pick(['bad_sig', 'x']);
    if (rnd() < 0.4) fields.severity = pick(['info', 'critical']);
    if (rnd() < 0.4) fields.durationUs = pick([0, 5, 2 ** 40]);
    if (rnd() < 0.3) fields.traceparent = `00-${newTraceId()}-${newSpanId()}-01`;
    const ev = c.build(pick(['authn.login', 'config.change', 'authz.check_x']), fields);
    const bytes = encodeEvent(ev);
    assert.deepEqual(bytes, packOrdered(ev), `event ${i}: ${JSON.stringify(fields, (k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`);
    assert.deepEqual(bytes, pack(validateEvent(unpack(bytes))), `event ${i} is canonical`);
  }
});
