// CURVE: the client encrypts and authenticates to a broker that has a server
// key and an allow-list (Ironhouse), with keys given as values or as the
// certificate files `secbus keys generate` writes; an unknown key gets
// nothing through, a loose secret key file is refused before anything runs.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { curveKeyPair } from 'zeromq';
import { Client } from '../src/index.js';
import { CURVE_MISSING, startBroker, tempDir } from './support/broker.js';
import { waitUntil } from './support/wait.js';

const cleanups = [];
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});

/** A ZeroMQ certificate file, as `secbus keys generate` writes it. */
function writeCert(file, publicKey, secretKey = null) {
  let body = '#   ****  Generated for a test  ****\nmetadata\ncurve\n';
  body += `    public-key = "${publicKey}"\n`;
  if (secretKey) body += `    secret-key = "${secretKey}"\n`;
  writeFileSync(file, body, { mode: secretKey ? 0o600 : 0o644 });
  return file;
}

let keys;
let broker;
let dir;
const opts = { skip: CURVE_MISSING };
before(async () => {
  dir = tempDir('secbus-js-curve-');
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const server = curveKeyPair();
  const client = curveKeyPair();
  keys = {
    server, client,
    serverSecretFile: writeCert(path.join(dir, 'broker.key_secret'), server.publicKey, server.secretKey),
    serverPublicFile: writeCert(path.join(dir, 'broker.key'), server.publicKey),
    clientSecretFile: writeCert(path.join(dir, 'web.key_secret'), client.publicKey, client.secretKey),
  };
  if (CURVE_MISSING) return;
  broker = await startBroker({
    curve: { serverKey: server.publicKey, publicKey: client.publicKey, secretKey: client.secretKey },
    config: {
      auth: { server_secret_key_file: keys.serverSecretFile, clients: [{ name: 'node-web', public_key: client.publicKey, tenant: 'acme', types: ['authn.'] }] },
    },
  });
  cleanups.push(() => broker.dispose());
});

function client(options) {
  const spoolDir = tempDir();
  const c = new Client({ service: 'web', endpoint: broker.ingest, spoolDir, ackTimeout: 500, ...options });
  cleanups.push(async () => {
    await c.close(0);
    rmSync(spoolDir, { recursive: true, force: true });
  });
  return c;
}

test('an allow-listed key given as key files publishes; a type outside its allow-list is rejected', opts, async (t) => {
  const h = await broker.healthz();
  if (!h.security?.curve) {
    t.skip('the broker in this tree does not run CURVE yet');
    return;
  }
  const c = client({ serverKey: keys.serverPublicFile, secretKey: keys.clientSecretFile });
  c.emit('authn.login', { actor: { user: 'alice' } });
  c.emit('authz.check');
  assert.equal(await c.flush(10000), true, JSON.stringify(c.stats()));
  const s = c.stats();
  assert.equal(s.acked, 1);
  assert.equal(s.rejected, 1);
  assert.match(s.lastError, /unauthorized/);
  assert.equal(await broker.eventCount(), 1);
});

test('keys given as Z85 values work the same', opts, async (t) => {
  if (!(await broker.healthz()).security?.curve) {
    t.skip('the broker in this tree does not run CURVE yet');
    return;
  }
  const before = await broker.eventCount();
  const c = client({ serverKey: keys.server.publicKey, publicKey: keys.client.publicKey, secretKey: keys.client.secretKey });
  c.emit('authn.login');
  assert.equal(await c.flush(10000), true, JSON.stringify(c.stats()));
  assert.equal(await broker.eventCount(), before + 1);
});

test('an unknown key gets nothing through: the client spools and reports no connection', opts, async (t) => {
  if (!(await broker.healthz()).security?.curve) {
    t.skip('the broker in this tree does not run CURVE yet');
    return;
  }
  const before = await broker.eventCount();
  const c = client({ serverKey: keys.server.publicKey }); // an ephemeral, unlisted key pair
  c.emit('authn.login');
  await waitUntil(() => c.stats().spooled === 1, 10000, () => JSON.stringify(c.stats()));
  assert.equal(c.stats().connected, false);
  assert.equal(c.stats().acked, 0);
  assert.equal(await broker.eventCount(), before);
});

test('a secret key file readable by others is refused, naming the file and the fix', () => {
  const loose = writeCert(path.join(dir, 'loose.key_secret'), keys.client.publicKey, keys.client.secretKey);
  chmodSync(loose, 0o644);
  assert.throws(() => new Client({ service: 'web', serverKey: keys.server.publicKey, secretKey: loose, spoolDir: dir }),
    (e) => e instanceof TypeError && /option secretKey: .*loose\.key_secret: mode 0644 is too open.*chmod 600/.test(e.message));
});

test('bad key options name the option and never echo a secret', () => {
  const secret = 'x'.repeat(39);
  assert.throws(() => new Client({ service: 'web', serverKey: keys.server.publicKey, publicKey: keys.client.publicKey, secretKey: secret, spoolDir: dir }),
    (e) => /option secretKey/.test(e.message) && !e.message.includes(secret));
  assert.throws(() => new Client({ service: 'web', secretKey: keys.client.secretKey, spoolDir: dir }), /option serverKey: publicKey\/secretKey are given/);
  assert.throws(() => new Client({ service: 'web', serverKey: keys.server.publicKey, publicKey: keys.client.publicKey, spoolDir: dir }), /give both or neither/);
  assert.throws(() => new Client({ service: 'web', serverKey: keys.serverSecretFile.replace('broker', 'nobody'), spoolDir: dir }), /option serverKey: expected a 40-character Z85 CURVE key or an existing key file/);
});
