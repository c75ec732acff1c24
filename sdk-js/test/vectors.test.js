// Every vector in proto/vectors: this codec encodes the value to exactly the
// vector's bytes, decodes the bytes back to the value, and rejects invalid
// ones with the same code and field as the Python reference.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { DEFAULT_LIMITS, WireError, checkPub, pack, packOrdered, unpack } from '../src/wire.js';
import { validateEvent } from '../src/event.js';

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../proto/vectors');
const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

/** JSON of a vector to a JavaScript value: {"$int": "..."} becomes an integer (BigInt beyond 2^53). */
function fromJson(value) {
  if (Array.isArray(value)) return value.map(fromJson);
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === '$int') {
      const big = BigInt(value.$int);
      return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
    }
    return Object.fromEntries(keys.map((k) => [k, fromJson(value[k])]));
  }
  return value;
}

test('there are at least thirty vectors of both kinds', () => {
  const cases = files.map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')));
  assert.ok(cases.length >= 30);
  assert.ok(cases.filter((c) => c.valid).length >= 10);
  assert.ok(cases.filter((c) => !c.valid).length >= 20);
});

for (const file of files) {
  test(`vector ${file.replace(/\.json$/, '')}`, () => {
    const c = JSON.parse(readFileSync(path.join(dir, file), 'utf8'));
    const data = Buffer.from(c.msgpack, 'hex');
    const limits = DEFAULT_LIMITS.withOverrides(c.limits ?? {});
    const raw = c.kind === 'pub' ? c.body : c.event;
    const value = raw === null ? null : fromJson(raw);
    if (value !== null) {
      assert.equal(pack(value).toString('hex'), c.msgpack, 'encoding differs from the vector bytes');
    }
    const check = c.kind === 'pub'
      ? () => checkPub(unpack(data, limits), data.length, limits)
      : () => validateEvent(unpack(data, limits), limits);
    if (c.valid) {
      const decoded = unpack(data, limits);
      assert.deepStrictEqual(decoded, value);
      check();
      if (c.kind === 'event') {
        assert.equal(packOrdered(validateEvent(decoded)).toString('hex'), c.msgpack, 'validated event re-encodes differently');
      }
    } else {
      assert.throws(check, (err) => {
        assert.ok(err instanceof WireError, `expected WireError, got ${err}`);
        assert.equal(err.code, c.error.code);
        assert.equal(err.field, c.error.field);
        assert.ok(err.message.includes(c.error.field.split('[')[0].split('.')[0]), err.message);
        return true;
      });
    }
  });
}
