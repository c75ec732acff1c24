// Full-queue policies under a burst, each forced deterministically: the bus
// is down (a free port) and the spool is the smallest allowed (64 KiB) while
// each event carries 2 KB, so the queue can drain only a few dozen events to
// disk; or, for "block" with a broker, the queue is far smaller than the burst.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Client } from '../src/index.js';
import { makeFallback } from '../src/fallback.js';
import { BROKER_MISSING, freePort, startBroker } from './support/broker.js';
import { Scratch } from './support/scratch.js';
import { waitUntil } from './support/wait.js';

const scratch = new Scratch();
after(() => scratch.cleanup());
const dir = () => scratch.dir();
async function offline(options) {
  const c = new Client({
    service: 'burst', endpoint: `tcp://127.0.0.1:${await freePort()}`, spoolDir: dir(), ackTimeout: 100, spoolMaxBytes: 64 * 1024, statsIntervalMs: 0, ...options, // exact counts
  });
  scratch.defer(() => c.close(0));
  return c;
}
/** Wait until the sender has given up on the bus and filled the spool. */
const PAD = 'x'.repeat(2000);
const spoolFull = (c) => waitUntil(() => {
  const s = c.stats();
  return s.held > 0 && s.spoolBytes + 2100 > 64 * 1024;
}, 10000, () => `spool full: ${JSON.stringify(c.stats())}`);

test('drop policy counts every event it gives up: spooled + dropped == emitted', async () => {
  const c = await offline({ queueSize: 50 });
  for (let i = 0; i < 500; i++) c.emit('authn.login', { attrs: { i, pad: PAD } });
  assert.equal(c.stats().dropped, 450, 'the burst beyond the queue is dropped at once');
  assert.equal(c.stats().queued, 50);
  await spoolFull(c);
  const mid = c.stats();
  assert.ok(mid.spooled > 0 && mid.spooled < 50, JSON.stringify(mid));
  await c.close(0);
  const s = c.stats();
  assert.equal(s.spooled + s.dropped, 500, JSON.stringify(s));
  assert.equal(s.spoolEvents, s.spooled);
  assert.equal(s.queued, 0);
});

test('fallback policy writes each overflowing event to the JSONL file, exactly', async () => {
  const file = path.join(dir(), 'overflow.jsonl');
  const c = await offline({ queueSize: 20, onFull: 'fallback', fallback: file });
  const ids = [];
  for (let i = 0; i < 300; i++) ids.push(c.emit('authn.login', { attrs: { i }, actor: { user: 'u' } }));
  assert.equal(c.stats().fallback, 280);
  assert.equal(c.stats().dropped, 0);
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  assert.equal(lines.length, 280);
  const first = JSON.parse(lines[0]);
  assert.equal(first.id, ids[20], 'the first event that found the queue full');
  assert.equal(first.attrs.i, 20);
  assert.equal(first.source.platform, 'node');
  assert.match(lines[0], /"ts":\d{19}[,}]/, 'ts is an exact JSON integer (ns), not a rounded float');
  assert.equal('reason' in first, false, 'absent fields are left out');
});

test('a fallback file whose disk fills mid-line: the write throws, and the next line stands alone', async () => {
  const file = path.join(dir(), 'overflow.jsonl');
  const src = new URL('../src/fallback.js', import.meta.url).href;
  // A child under a 512-byte file-size limit (SIGXFSZ ignored, as Python does): the first line fits,
  // the second is cut by the limit and its write throws EFBIG.
  const script = `process.on('SIGXFSZ', () => {});
    const { makeFallback } = await import(${JSON.stringify(src)});
    const sink = makeFallback(${JSON.stringify(file)});
    sink.write({ id: 'first' });
    try { sink.write({ id: 'dropped', pad: 'x'.repeat(600) }); } catch (err) { console.log(err.code); }`;
  const out = execFileSync('/bin/sh', ['-c', 'ulimit -S -f 1 && exec "$0" --input-type=module -e "$1"', process.execPath, script]);
  assert.equal(out.toString().trim(), 'EFBIG');
  const sink = makeFallback(file); // a later process, with room again
  sink.write({ id: 'third' });
  sink.close();
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l);
  assert.equal(lines.length, 3);
  assert.equal(JSON.parse(lines[0]).id, 'first');
  assert.match(lines[1], /"dropped"/); // the torn fragment, on a line of its own
  assert.throws(() => JSON.parse(lines[1]));
  assert.equal(JSON.parse(lines[2]).id, 'third');
});

test('fallback to a function receives the event; a throwing function counts as dropped', async () => {
  const got = [];
  const c = await offline({ queueSize: 5, onFull: 'fallback', fallback: (e) => got.push(e) });
  for (let i = 0; i < 25; i++) c.emit('authz.check', { attrs: { i } });
  assert.equal(got.length, 20);
  assert.equal(typeof got[0].ts, 'bigint');
  assert.equal(got[19].attrs.i, 24);

  const bad = await offline({ queueSize: 5, onFull: 'fallback', fallback: () => { throw new Error('sink down'); } });
  for (let i = 0; i < 8; i++) bad.emit('authz.check');
  assert.equal(bad.stats().dropped, 3);
  assert.equal(bad.stats().fallback, 0);
  assert.match(bad.stats().lastError, /fallback failed: sink down/);
});

test('block policy: emit returns a promise that waits for room, and blockTimeout drops and counts', async () => {
  const c = await offline({ queueSize: 10, onFull: 'block', blockTimeout: 150 });
  const pending = [];
  for (let i = 0; i < 100; i++) pending.push(c.emit('authn.login', { attrs: { i, pad: PAD } }));
  assert.ok(pending.every((p) => p instanceof Promise));
  assert.equal(c.stats().queued, 100, 'waiting events count as queued');
  const ids = await Promise.all(pending);
  assert.equal(new Set(ids).size, 100, 'every promise resolves with its event id');
  // The spool (64 KiB) takes about 30 of these 2 KB events: the rest cannot find room in time.
  await spoolFull(c);
  const mid = c.stats();
  assert.ok(mid.dropped > 0, JSON.stringify(mid));
  assert.match(mid.lastError, /spool full|waited 150 ms/);
  assert.equal(mid.spooled + mid.queued + mid.held + mid.dropped, 100, JSON.stringify(mid));
  await c.close(0);
  const s = c.stats();
  assert.equal(s.spooled + s.dropped, 100, JSON.stringify(s));
});

test('block policy loses nothing under a burst 300 times the queue size', { skip: BROKER_MISSING }, async () => {
  const b = await startBroker();
  scratch.defer(() => b.dispose());
  const c = new Client({ service: 'burst', endpoint: b.ingest, spoolDir: dir(), queueSize: 10, batchSize: 5, onFull: 'block' });
  scratch.defer(() => c.close(0));
  const ids = await Promise.all(Array.from({ length: 3000 }, (_, i) => c.emit('authn.login', { attrs: { i } })));
  assert.equal(new Set(ids).size, 3000);
  assert.equal(await c.flush(20000), true, JSON.stringify(c.stats()));
  const s = c.stats();
  assert.equal(s.dropped, 0);
  assert.equal(s.acked, 3000);
  assert.equal(await b.eventCount(), 3000);
});

test('emit after close is counted as dropped, never thrown', async () => {
  const c = await offline({});
  await c.close(0);
  assert.match(c.emit('authn.login'), /^[0-9a-f-]{36}$/);
  assert.equal(c.stats().dropped, 1);
});

test('spooling a full queue yields to the application between slices', async () => {
  const c = await offline({ spoolMaxBytes: 64 * 1024 * 1024 });
  c.emit('authn.login');
  await waitUntil(() => c.stats().spoolEvents === 1, 10000, () => JSON.stringify(c.stats())); // the bus is known down
  for (let i = 0; i < 5000; i++) c.emit('authn.login', { attrs: { i } });
  const seen = [];
  await new Promise((resolve) => {
    const look = () => {
      const n = c.stats().spoolEvents;
      seen.push(n);
      if (n === 5001) resolve();
      else setImmediate(look);
    };
    setImmediate(look);
  });
  assert.ok(seen.some((n) => n > 1 && n < 5001), `the application ran while spooling was under way: ${seen.join(',')}`);
  assert.equal(c.stats().dropped, 0);
});
