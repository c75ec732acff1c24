// A peer that answers with garbage never crashes the client: each bad reply
// is named in lastError, the events it did not acknowledge time out and go
// to the spool (nothing lost), and the client stays usable. The peer is a
// plain ZeroMQ ROUTER standing in for a broken or hostile broker.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { Router } from 'zeromq';
import { Client } from '../src/index.js';
import { MAGIC, pack } from '../src/wire.js';
import { tempDir } from './support/broker.js';
import { waitUntil } from './support/wait.js';

const cleanups = [];
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});

async function hostilePeer(replies) {
  const router = new Router({ linger: 0 });
  await router.bind('tcp://127.0.0.1:0');
  const seen = [];
  (async () => {
    for await (const [id, ...frames] of router) {
      seen.push(frames[1].toString());
      for (const reply of replies(frames)) await router.send([id, ...reply]);
    }
  })().catch(() => {});
  cleanups.push(() => router.close());
  return { endpoint: router.lastEndpoint, seen };
}

test('garbage replies are reported, never thrown; unacknowledged events are spooled', async () => {
  const peer = await hostilePeer(() => [
    [MAGIC, Buffer.from('ACK'), pack([1, 2])], // body not a map
    [MAGIC, Buffer.from('HELLO'), pack({})], // unknown command
    [Buffer.from('SECBUS9'), Buffer.from('ACK'), pack({})], // another major version
    [MAGIC, Buffer.from('ACK'), Buffer.from([0xc1])], // not msgpack
    [MAGIC, Buffer.from('ACK'), pack({ seq: 999999, accepted: 5, duplicate: 0, rejected: [] })], // no such batch
    [MAGIC, Buffer.from('ERR'), pack({ seq: null, code: 'malformed', message: 'who knows' })], // ERR for no batch
  ]);
  const dir = tempDir();
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const c = new Client({ service: 'victim', endpoint: peer.endpoint, spoolDir: dir, ackTimeout: 300, logger: { debug() {}, warn() {} } });
  cleanups.push(() => c.close(0));
  for (let i = 0; i < 20; i++) c.emit('authn.login', { attrs: { i } });
  await waitUntil(() => c.stats().spoolEvents === 20, 10000, () => JSON.stringify(c.stats()));
  const s = c.stats();
  assert.ok(peer.seen.includes('PUB'));
  assert.equal(s.acked, 0, 'an ACK for an unknown batch acknowledges nothing');
  assert.equal(s.connected, false);
  assert.match(s.lastError, /no ACK within 300 ms/);
  assert.equal(s.spooled, 20);
  assert.equal(s.dropped, 0);
});

test('each kind of bad reply is named in lastError', async () => {
  const cases = [
    [[MAGIC, Buffer.from('ACK'), pack([1])], /bad reply from the broker: body: expected a map/],
    [[MAGIC, Buffer.from('HELLO'), pack({})], /bad reply from the broker: frame 1: unknown command "HELLO"/],
    [[Buffer.from('SECBUS9'), Buffer.from('ACK'), pack({})], /bad reply from the broker: frame 0: protocol SECBUS9 is not supported/],
    [[MAGIC, Buffer.from('ACK'), Buffer.from([0xc1])], /bad reply from the broker: body: not valid msgpack/],
    [[MAGIC, Buffer.from('ERR'), pack({ seq: null, code: 'malformed', message: 'bad frames' })], /broker error malformed: bad frames/],
  ];
  for (const [reply, pattern] of cases) {
    const peer = await hostilePeer(() => [reply]);
    const dir = tempDir();
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const logged = [];
    const c = new Client({ service: 'victim', endpoint: peer.endpoint, spoolDir: dir, ackTimeout: 5000, statsIntervalMs: 0, logger: { debug() {}, warn: (m) => logged.push(m) } });
    c.emit('authn.login');
    await waitUntil(() => pattern.test(c.stats().lastError ?? ''), 10000, () => `${pattern}: ${c.stats().lastError}`);
    assert.ok(logged.some((m) => pattern.test(m)), 'and logged as a warning');
    await c.close(0);
    assert.equal(c.stats().spooled, 1, 'the unacknowledged event is kept');
  }
});
