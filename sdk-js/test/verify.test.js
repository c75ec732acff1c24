// verify(type, fn): times the check, records success, failure or error with
// durationUs, and returns or rethrows exactly what fn does, sync or async.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { Client, WireError } from '../src/index.js';
import { freePort, tempDir } from './support/broker.js';

const dirs = [];
const clients = [];
after(() => {
  for (const c of clients) c.closeSync();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function offlineClient() {
  const dir = tempDir();
  dirs.push(dir);
  const client = new Client({ service: 'api', endpoint: `tcp://127.0.0.1:${await freePort()}`, spoolDir: dir });
  clients.push(client);
  return client;
}

function lastQueued(client) {
  const q = client.queue;
  return q.size === 0 ? undefined : q.items[(q.head + q.size - 1) % q.capacity];
}

class InvalidSignature extends Error {}

test('a sync check that returns records success with its duration and passes the value through', async () => {
  const client = await offlineClient();
  const result = client.verify('security.signature_check', () => {
    const until = process.hrtime.bigint() + 2_000_000n; // the check itself takes 2 ms
    while (process.hrtime.bigint() < until);
    return { ok: true };
  }, { resource: 'invoice/42', actor: { key_id: 'k1' } });
  assert.deepEqual(result, { ok: true });
  const e = lastQueued(client);
  assert.equal(e.type, 'security.signature_check');
  assert.equal(e.outcome, 'success');
  assert.equal(e.resource, 'invoice/42');
  assert.deepEqual(e.actor, { key_id: 'k1' });
  assert.ok(e.duration_us >= 2000 && e.duration_us < 1_000_000, `duration_us ${e.duration_us}`);
});

test('v.fail(reason) records failure with that reason', async () => {
  const client = await offlineClient();
  const out = client.verify('security.signature_check', (v) => {
    v.fail('bad_signature');
    return false;
  });
  assert.equal(out, false);
  assert.equal(lastQueued(client).outcome, 'failure');
  assert.equal(lastQueued(client).reason, 'bad_signature');
});

test('a throwing check records error with the class name and rethrows the same error', async () => {
  const client = await offlineClient();
  const boom = new RangeError('key too short');
  assert.throws(() => client.verify('authn.token.verify', () => { throw boom; }), (err) => err === boom);
  assert.equal(lastQueued(client).outcome, 'error');
  assert.equal(lastQueued(client).reason, 'RangeError');
  assert.ok(Number.isInteger(lastQueued(client).duration_us));
});

test('an error of a failOn class records failure, still rethrown', async () => {
  const client = await offlineClient();
  const err = new InvalidSignature('nope');
  assert.throws(() => client.verify('security.signature_check', () => { throw err; }, { failOn: [InvalidSignature] }), (e) => e === err);
  assert.equal(lastQueued(client).outcome, 'failure');
  assert.equal(lastQueued(client).reason, 'InvalidSignature');
});

test('falsyIsFailure records a falsy result as failure falsy_result', async () => {
  const client = await offlineClient();
  assert.equal(client.verify('authz.check', () => 0, { falsyIsFailure: true }), 0);
  assert.equal(lastQueued(client).outcome, 'failure');
  assert.equal(lastQueued(client).reason, 'falsy_result');
  client.verify('authz.check', () => 0);
  assert.equal(lastQueued(client).outcome, 'success', 'without the option a falsy result is a success');
});

test('an async check is recorded when it settles: resolve is success, reject is error and rejects the same', async () => {
  const client = await offlineClient();
  const p = client.verify('authn.token.verify', async () => {
    await new Promise((resolve) => setTimeout(resolve, 5)); // the behaviour under test: time spent awaiting counts
    return 'claims';
  });
  assert.ok(p instanceof Promise);
  assert.equal(client.stats().queued, 0, 'nothing recorded before the check settles');
  assert.equal(await p, 'claims');
  assert.equal(lastQueued(client).outcome, 'success');
  assert.ok(lastQueued(client).duration_us >= 4000, `duration_us ${lastQueued(client).duration_us}`);

  const err = new TypeError('expired');
  await assert.rejects(client.verify('authn.token.verify', async (v) => {
    await null;
    v.fail('expired'); // fail() wins over the error class name
    throw err;
  }), (e) => e === err);
  assert.equal(lastQueued(client).outcome, 'failure');
  assert.equal(lastQueued(client).reason, 'expired');
});

test('bad arguments throw before the check runs', async () => {
  const client = await offlineClient();
  let ran = false;
  assert.throws(() => client.verify('Bad Type', () => { ran = true; }), (e) => e instanceof WireError && e.field === 'type');
  assert.throws(() => client.verify('authz.check', () => { ran = true; }, { severity: 'huge' }), (e) => e.field === 'severity');
  assert.throws(() => client.verify('authz.check', 'not a function'), TypeError);
  assert.equal(ran, false);
});
