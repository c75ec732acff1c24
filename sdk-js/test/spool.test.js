// The disk spool on its own: records survive the process, a torn or corrupt
// tail is detected and never replayed, the bound holds, and two owners of a
// directory never share files.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, mkdirSync, statSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MAGIC, Spool, crc32, encodeRecords } from '../src/spool.js';
import { tempDir } from './support/broker.js';

const dirs = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function dir() {
  const d = tempDir('secbus-js-spool-');
  dirs.push(d);
  return d;
}
const payloads = (n, from = 0) => Array.from({ length: n }, (_, i) => Buffer.from(`event-${from + i}`));
const texts = (events) => events.map((b) => b.toString());

test('crc32 is the standard CRC-32 (IEEE)', () => {
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
});

test('records written by one spool are read back in order by the next (it survives the process)', () => {
  const d = dir();
  const a = new Spool(d, { maxBytes: 1 << 20 }).open();
  assert.ok(a.append(payloads(3)));
  assert.ok(a.append(payloads(2, 3)));
  assert.equal(a.events, 5);
  a.close();
  const b = new Spool(d, { maxBytes: 1 << 20 }).open();
  assert.equal(b.events, 5);
  const seg = b.readOldest();
  assert.deepEqual(texts(seg.events), ['event-0', 'event-1', 'event-2', 'event-3', 'event-4']);
  assert.equal(seg.torn, false);
  b.remove(seg.name);
  assert.ok(b.isEmpty);
  assert.equal(b.bytes, 0);
  assert.deepEqual(readdirSync(d).filter((n) => n.endsWith('.seg')), [], 'the acknowledged segment is deleted');
  b.close();
});

test('a new process never appends to an old segment, so segments replay in write order', () => {
  const d = dir();
  const a = new Spool(d, { maxBytes: 1 << 20 }).open();
  a.append(payloads(2));
  a.close();
  const b = new Spool(d, { maxBytes: 1 << 20 }).open();
  b.append(payloads(2, 2));
  const first = b.readOldest();
  assert.deepEqual(texts(first.events), ['event-0', 'event-1']);
  b.remove(first.name);
  assert.deepEqual(texts(b.readOldest().events), ['event-2', 'event-3']);
  b.close();
});

test('a torn tail (crash mid-record) is skipped and counted, the good records before it are kept', () => {
  const d = dir();
  const a = new Spool(d, { maxBytes: 1 << 20 }).open();
  a.append(payloads(4));
  a.close();
  const file = path.join(d, readdirSync(d).find((n) => n.endsWith('.seg')));
  truncateSync(file, readFileSync(file).length - 3); // the last record loses its end
  const b = new Spool(d, { maxBytes: 1 << 20 }).open();
  const seg = b.readOldest();
  assert.deepEqual(texts(seg.events), ['event-0', 'event-1', 'event-2']);
  assert.equal(seg.torn, true);
  assert.equal(b.torn, 1);
  assert.equal(b.events, 3);
  b.close();
});

test('a corrupt record (bad CRC) stops the read there: garbage is never replayed', () => {
  const d = dir();
  const a = new Spool(d, { maxBytes: 1 << 20 }).open();
  a.append(payloads(3));
  a.close();
  const file = path.join(d, readdirSync(d).find((n) => n.endsWith('.seg')));
  const data = readFileSync(file);
  const second = MAGIC.length + 8 + 'event-0'.length + 8; // first byte of record 2's payload
  data[second] ^= 0xff;
  writeFileSync(file, data);
  const b = new Spool(d, { maxBytes: 1 << 20 }).open();
  const seg = b.readOldest();
  assert.deepEqual(texts(seg.events), ['event-0']);
  assert.equal(b.torn, 1);
  b.close();
});

test('garbage appended after the last record (a torn header) is detected', () => {
  const d = dir();
  const a = new Spool(d, { maxBytes: 1 << 20 }).open();
  a.append(payloads(2));
  a.close();
  const file = path.join(d, readdirSync(d).find((n) => n.endsWith('.seg')));
  appendFileSync(file, Buffer.from([0, 0, 0]));
  const b = new Spool(d, { maxBytes: 1 << 20 }).open();
  assert.deepEqual(texts(b.readOldest().events), ['event-0', 'event-1']);
  assert.equal(b.torn, 1);
  b.close();
});

test('the bound holds: an append that would cross maxBytes is refused whole', () => {
  const d = dir();
  const s = new Spool(d, { maxBytes: 200 }).open();
  const one = payloads(1);
  let accepted = 0;
  while (s.append(one)) accepted++;
  assert.ok(accepted > 0);
  assert.ok(s.bytes <= 200, `spool holds ${s.bytes} bytes`);
  const onDisk = readdirSync(d).filter((n) => n.endsWith('.seg')).reduce((sum, n) => sum + readFileSync(path.join(d, n)).length, 0);
  assert.equal(onDisk, s.bytes);
  assert.equal(s.append(payloads(1)), false);
  assert.equal(s.events, accepted);
  s.close();
});

test('the record format is length, CRC-32, payload', () => {
  const rec = encodeRecords([Buffer.from('abc')]);
  assert.equal(rec.readUInt32BE(0), 3);
  assert.equal(rec.readUInt32BE(4), crc32(Buffer.from('abc')));
  assert.equal(rec.subarray(8).toString(), 'abc');
});

test('a second owner of the directory gets its own sub-directory; a dead owner\'s is adopted', () => {
  const d = dir();
  const a = new Spool(d, { maxBytes: 1 << 20 }).open();
  const b = new Spool(d, { maxBytes: 1 << 20 }).open();
  assert.equal(a.dir, d);
  assert.notEqual(b.dir, d);
  assert.match(path.basename(b.dir), /^proc-\d+-\d+$/);
  b.append(payloads(1));
  a.close();
  b.close();

  // A worker that died with events in its sub-directory.
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
  const orphan = path.join(d, `proc-${dead}-0`);
  mkdirSync(orphan);
  writeFileSync(path.join(orphan, 'node.lock'), `${dead}\n`);
  writeFileSync(path.join(orphan, 'node-0000000000000001.seg'), Buffer.concat([MAGIC, encodeRecords([Buffer.from('orphaned')])]));
  const c = new Spool(d, { maxBytes: 1 << 20 }).open();
  assert.equal(c.dir, d);
  assert.equal(existsSync(orphan), false, 'the orphan directory was adopted and removed');
  const all = [];
  for (let seg = c.readOldest(); seg !== null; seg = c.readOldest()) {
    all.push(...texts(seg.events));
    c.remove(seg.name);
  }
  assert.deepEqual(all.sort(), ['event-0', 'orphaned']);
  c.close();
});

test('a spool directory removed under the client is recreated; what was lost with it is skipped, not fatal', () => {
  const d = dir();
  const s = new Spool(d, { maxBytes: 1 << 20 }).open();
  s.append(payloads(2));
  s.seal();
  rmSync(d, { recursive: true, force: true });
  assert.ok(s.append(payloads(1, 2)), 'the next append recreates the directory');
  const seen = [];
  for (let seg = s.readOldest(); seg !== null; seg = s.readOldest()) {
    seen.push(...texts(seg.events));
    s.remove(seg.name);
  }
  assert.deepEqual(seen, ['event-2']);
  assert.equal(s.torn, 1, 'the unreadable segment is counted');
  assert.ok(s.isEmpty);
  assert.equal(s.bytes, 0);
  s.close();
});

test('a spool dir open to other users is named in a warning; a new one is owner-only', () => {
  const warnings = [];
  const fresh = path.join(dir(), 'fresh');
  new Spool(fresh, { maxBytes: 1 << 20, warn: (m) => warnings.push(m) }).open().close();
  assert.equal(statSync(fresh).mode & 0o777, 0o700);
  assert.deepEqual(warnings, []);
  const shared = path.join(dir(), 'shared');
  mkdirSync(shared);
  chmodSync(shared, 0o755);
  new Spool(shared, { maxBytes: 1 << 20, warn: (m) => warnings.push(m) }).open().close();
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /is open to other users \(mode 755\).*chmod 700/);
});
