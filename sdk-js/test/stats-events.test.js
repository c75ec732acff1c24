// perf.sdk.stats self-reports (README.md, "Self-reports"), against the real broker:
// the report carries exactly the attrs proto/EVENTS.md lists and passes the codec's
// validateEvent; with the metrics handler the broker shows them as secbus_sdk_*
// gauges; close() adds a final report only when something changed; the unref'd
// timer never keeps an idle process alive; bad option values are refused by name.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '../src/index.js';
import { validateEvent } from '../src/event.js';
import { BROKER_MISSING } from './support/broker.js';
import { killEmitters, runEmitter } from './support/child.js';
import { Scratch } from './support/scratch.js';
import { waitUntil } from './support/wait.js';

const ATTRS = ['dropped', 'fallback', 'queued', 'rejected', 'replayed', 'spooled'];
const scratch = new Scratch();
after(async () => {
  killEmitters();
  await scratch.cleanup();
});
const dir = () => scratch.dir();
const client = (options) => scratch.client(options);
const broker = (opts) => scratch.broker(opts);
const opts = { skip: BROKER_MISSING, timeout: 60_000 };

test('a report carries exactly the EVENTS.md attrs as integers and is a valid event', () => {
  const c = client({ service: 'js-stats-unit', endpoint: 'tcp://127.0.0.1:1', statsIntervalMs: 3_600_000 });
  c.emit('authn.login');
  const queuedBefore = c.stats().queued;
  assert.equal(c.reportStats(false), true);
  const items = c.queue.drain();
  const report = items.at(-1);
  assert.equal(report.type, 'perf.sdk.stats');
  assert.deepEqual(Object.keys(report.attrs).sort(), ATTRS);
  assert.ok(Object.values(report.attrs).every((v) => Number.isInteger(v) && v >= 0));
  assert.equal(report.attrs.queued, queuedBefore); // read before it was queued: never counts itself
  assert.equal(report.outcome, 'success');
  assert.equal(report.severity, 'info');
  const plain = Object.fromEntries(Object.entries(report).filter(([, v]) => v !== undefined));
  validateEvent(plain);
});

test('a client that dropped events reports failure with severity high', () => {
  const c = client({ service: 'js-stats-drop', endpoint: 'tcp://127.0.0.1:1', statsIntervalMs: 3_600_000, queueSize: 1 });
  c.emit('authn.login');
  c.emit('authn.login'); // the queue holds one: dropped
  c.queue.drain();
  assert.equal(c.reportStats(false), true);
  const [report] = c.queue.drain();
  assert.equal(report.attrs.dropped, 1);
  assert.equal(report.outcome, 'failure');
  assert.equal(report.severity, 'high');
  // A full queue skips the report instead of counting it as dropped.
  c.emit('authn.login');
  assert.equal(c.reportStats(false), false);
  assert.equal(c.stats().dropped, 1);
});

test('reports arrive at the broker and show as secbus_sdk_* gauges for the service', opts, async () => {
  const b = await broker({ config: { handlers: { enabled: ['metrics'] } } });
  const before = await b.eventCount();
  const c = client({ service: 'js-stats', endpoint: b.ingest, statsIntervalMs: 200 });
  for (let i = 0; i < 3; i++) c.emit('authn.token.verify', { resource: `/api/${i}` });
  const lines = await waitUntil(async () => {
    const body = await (await fetch(`http://${b.http}/metrics`)).text();
    const mine = body.split('\n').filter((l) => l.startsWith('secbus_sdk_') && l.includes('service="js-stats"'));
    const names = new Set(mine.map((l) => l.split('{')[0]));
    return ATTRS.every((a) => names.has(`secbus_sdk_${a}`)) && mine;
  }, 20_000, 'secbus_sdk_* gauges for js-stats in /metrics');
  assert.ok(lines.every((l) => l.includes('platform="node"') && l.includes(`:${process.pid}"`)), lines.join('\n'));
  const dropped = lines.filter((l) => l.startsWith('secbus_sdk_dropped{'));
  assert.ok(dropped.length > 0 && dropped.every((l) => Number(l.split(' ').at(-1)) === 0), dropped.join('\n'));
  // A heartbeat: reports keep coming while the client is idle (3 app events + at least 2 reports).
  await waitUntil(async () => (await b.eventCount()) - before >= 5, 20_000, '3 events and 2 reports stored');
});

test('close() sends a final report when something changed, none when nothing did', opts, async () => {
  const b = await broker();
  const busy = client({ service: 'js-stats-busy', endpoint: b.ingest, statsIntervalMs: 3_600_000 });
  const idle = client({ service: 'js-stats-idle', endpoint: b.ingest, statsIntervalMs: 3_600_000 });
  const before = await b.eventCount();
  busy.emit('authn.login');
  busy.emit('authn.login');
  await busy.close(10_000);
  assert.equal(busy.stats().acked, 3); // two events and the final report
  await idle.close(10_000);
  assert.equal(idle.stats().sent, 0); // carried nothing: no report
  assert.equal(await b.eventCount() - before, 3);

  const quiet = client({ service: 'js-stats-quiet', endpoint: b.ingest, statsIntervalMs: 3_600_000 });
  quiet.emit('authn.login');
  assert.ok(await quiet.flush(10_000));
  assert.equal(quiet.reportStats(false), true); // what the timer does each interval
  assert.ok(await quiet.flush(10_000));
  await quiet.close(10_000);
  assert.equal(quiet.stats().sent, 2); // nothing changed since that report: close added none
});

test('an idle client with the stats timer running still lets the process exit', opts, async () => {
  const b = await broker();
  for (const n of [0, 5]) {
    const child = runEmitter({ endpoint: b.ingest, spoolDir: dir(), n, end: 'flush', options: { statsIntervalMs: 50 } });
    const { code, ms } = await child.exited;
    assert.equal(code, 0, child.stderr);
    assert.ok(child.step('flushed'), JSON.stringify(child.lines));
    assert.ok(ms < 15000, `exited after ${ms} ms`); // the failure mode is never exiting
  }
});

test('statsIntervalMs 0 or null turns reports off; bad values are refused naming the option', () => {
  for (const off of [0, null]) {
    const c = client({ service: 'js-stats-off', endpoint: 'tcp://127.0.0.1:1', statsIntervalMs: off });
    c.emit('authn.login');
    c.closeSync();
    assert.equal(c.stats().spoolEvents, 1); // the app's event only: no final report
  }
  for (const bad of [-1, '60000', NaN, Infinity, true, [1]]) {
    assert.throws(() => new Client({ service: 'x', spoolDir: dir(), statsIntervalMs: bad }), /statsIntervalMs/);
  }
});
