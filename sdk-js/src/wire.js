/**
 * Wire protocol v1: frames, canonical msgpack, limits and error codes.
 *
 * Every request and reply is three ZeroMQ frames: `SECBUS1`, a command, a
 * msgpack body (proto/PROTOCOL.md). The Python SDK, the broker and this SDK
 * must produce the same bytes for the same value, so `pack()` writes
 * *canonical* msgpack: map keys sorted by their UTF-8 bytes, integers in their
 * smallest form, integral numbers below 2^53 as integers, other numbers as
 * float64, strings always as `str`, never `bin` or ext types.
 *
 * Why the encoder is hand-written (about a hundred lines) while decoding uses
 * @msgpack/msgpack: the library's Encoder cannot produce the canonical form in
 * three cases, checked against proto/vectors:
 *   1. with `useBigInt64: true` (needed for `ts`, which is beyond 2^53) it
 *      writes safe integers of 2^32 and more as float64 instead of uint64/int64;
 *   2. it writes every BigInt as a 64-bit integer, even 5n;
 *   3. its `sortKeys` compares UTF-16 code units, which differs from UTF-8 byte
 *      order for keys mixing astral characters with U+E000..U+FFFF, and
 *      without `sortKeys` integer-like keys ("10", "9") come out in numeric
 *      order, because that is how JavaScript orders object keys.
 * Working around all three would copy every value before encoding it; writing
 * the canonical form directly is shorter and faster on the sender's path.
 *
 * Decoding (`unpack`) is @msgpack/msgpack's Decoder with `useBigInt64`, an
 * extension codec that refuses ext types, a map-key check that refuses
 * non-string keys, and lengths bounded by the input size. Integers come back
 * as Numbers when they are safe integers and as BigInt otherwise (`ts`).
 * Every failure is a `WireError` with a protocol code, so callers handle one
 * error type.
 */

import { Decoder, ExtensionCodec } from '@msgpack/msgpack';

export const MAGIC = Buffer.from('SECBUS1');
export const PROTOCOL_VERSION = 1;

export const PUB = 'PUB';
export const ACK = 'ACK';
export const ERR = 'ERR';
export const PING = 'PING';
export const PONG = 'PONG';
export const COMMANDS = Object.freeze([PUB, ACK, ERR, PING, PONG]);

// Request-level error codes (ERR replies).
export const MALFORMED = 'malformed';
export const TOO_LARGE = 'too_large';
export const UNSUPPORTED_VERSION = 'unsupported_version';
export const UNAUTHORIZED = 'unauthorized';
export const OVERLOADED = 'overloaded';
// Per-event rejection code (inside ACK.rejected).
export const INVALID = 'invalid';

const TWO_53 = 2 ** 53;
const MIN_INT64 = -(2n ** 63n);
const MAX_UINT64 = 2n ** 64n - 1n;
const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE_BIG = BigInt(Number.MIN_SAFE_INTEGER);

/** Protocol names of the limits (as in the broker's `[limits]` config) to their camelCase names. */
const LIMIT_NAMES = Object.freeze({
  max_event_bytes: 'maxEventBytes',
  max_batch_events: 'maxBatchEvents',
  max_batch_bytes: 'maxBatchBytes',
  max_string_bytes: 'maxStringBytes',
  max_attrs: 'maxAttrs',
  max_list_items: 'maxListItems',
});

/**
 * Size limits on everything a peer sends (PROTOCOL.md section 5). Defaults:
 * an event of 64 KiB, a batch of 1000 events or 1 MiB, strings of 4 KiB
 * (UTF-8 bytes), 64 attrs, 64 items per attrs list. A frame may be 64 KiB
 * larger than a batch, room for the envelope.
 */
export class Limits {
  constructor(values = {}) {
    this.maxEventBytes = 64 * 1024;
    this.maxBatchEvents = 1000;
    this.maxBatchBytes = 1024 * 1024;
    this.maxStringBytes = 4 * 1024;
    this.maxAttrs = 64;
    this.maxListItems = 64;
    for (const [key, value] of Object.entries(normalizeLimitNames(values))) {
      if (!Number.isSafeInteger(value) || value < 0) {
        throw new RangeError(`limits: ${key} must be a non-negative integer, got ${show(value)}`);
      }
      this[key] = value;
    }
    Object.freeze(this);
  }

  get maxFrameBytes() {
    return this.maxBatchBytes + 64 * 1024;
  }

  /** A copy with some limits changed; accepts protocol (snake_case) or camelCase names. */
  withOverrides(overrides) {
    const base = {};
    for (const key of Object.values(LIMIT_NAMES)) base[key] = this[key];
    return new Limits({ ...base, ...normalizeLimitNames(overrides) });
  }
}

function normalizeLimitNames(overrides) {
  const out = {};
  for (const [name, value] of Object.entries(overrides ?? {})) {
    const key = LIMIT_NAMES[name] ?? name;
    if (!Object.values(LIMIT_NAMES).includes(key)) {
      throw new RangeError(`limits: unknown limit ${JSON.stringify(name)}; known: ${Object.keys(LIMIT_NAMES).join(', ')}`);
    }
    out[key] = value;
  }
  return out;
}

export const DEFAULT_LIMITS = new Limits();

/**
 * A protocol violation with its code (`malformed`, `invalid`, ...) and the
 * field it concerns, if any. `message` names the field and the value.
 */
export class WireError extends Error {
  constructor(code, message, field = null) {
    super(message);
    this.name = 'WireError';
    this.code = code;
    this.field = field;
  }

  asList() {
    return [this.code, this.message];
  }
}

/** A short, safe rendering of a bad value for an error message. */
export function show(value, width = 60) {
  let text;
  if (typeof value === 'string') text = JSON.stringify(value);
  else if (typeof value === 'bigint') text = `${value}`;
  else if (value === undefined) text = 'undefined';
  else if (value instanceof Uint8Array) text = `<${value.length} bytes of binary>`;
  else if (typeof value === 'function') text = `<function ${value.name || 'anonymous'}>`;
  else {
    try {
      text = JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? `${v}` : v)) ?? String(value);
    } catch {
      text = Object.prototype.toString.call(value);
    }
  }
  return text.length <= width ? text : `${text.slice(0, width - 3)}...`;
}

// ---------------------------------------------------------------------------
// canonical msgpack encoding

/**
 * Order two strings by their UTF-8 bytes (= by code points). JavaScript's
 * `<` compares UTF-16 code units, which puts surrogates (astral characters)
 * before U+E000..U+FFFF; remapping the two ranges fixes that.
 */
export function compareUtf8(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      if (x >= 0xd800) x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      if (y >= 0xd800) y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
      return x - y;
    }
  }
  return a.length - b.length;
}

function isPlainObject(value) {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A growable buffer that writes canonical msgpack. */
class Writer {
  constructor(size = 4096) {
    this.buf = Buffer.allocUnsafe(size);
    this.pos = 0;
  }

  reset() {
    this.pos = 0;
  }

  ensure(n) {
    if (this.pos + n > this.buf.length) {
      const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
      this.buf.copy(next, 0, 0, this.pos);
      this.buf = next;
    }
  }

  /** A copy of what was written (the writer's buffer is reused). */
  take() {
    const out = Buffer.allocUnsafe(this.pos);
    this.buf.copy(out, 0, 0, this.pos);
    return out;
  }

  byte(b) {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  value(v, sorted) {
    switch (typeof v) {
      case 'string':
        return this.string(v);
      case 'number':
        return this.number(v);
      case 'bigint':
        return this.bigint(v);
      case 'boolean':
        return this.byte(v ? 0xc3 : 0xc2);
      case 'undefined':
        return this.byte(0xc0);
      case 'object':
        if (v === null) return this.byte(0xc0);
        if (Array.isArray(v)) return this.array(v, sorted);
        if (v instanceof Map) return this.map(v, sorted);
        if (isPlainObject(v)) return this.object(v, sorted);
        if (v instanceof Uint8Array) {
          throw new WireError(INVALID, 'binary values are not allowed: secbus carries strings, never msgpack bin');
        }
        break;
      default:
        break;
    }
    throw new WireError(INVALID, `cannot encode ${show(v)} (${Object.prototype.toString.call(v)}): only strings, numbers, BigInt, booleans, null, arrays and plain objects`);
  }

  number(v) {
    if (Number.isInteger(v) && v < TWO_53 && v > -TWO_53) {
      this.int(v);
      return;
    }
    this.ensure(9);
    this.buf[this.pos] = 0xcb;
    this.buf.writeDoubleBE(v, this.pos + 1);
    this.pos += 9;
  }

  int(v) {
    const buf = this.buf;
    this.ensure(9);
    let p = this.pos;
    if (v >= 0) {
      if (v < 0x80) buf[p++] = v;
      else if (v < 0x100) { buf[p++] = 0xcc; buf[p++] = v; }
      else if (v < 0x10000) { buf[p] = 0xcd; buf.writeUInt16BE(v, p + 1); p += 3; }
      else if (v < 0x100000000) { buf[p] = 0xce; buf.writeUInt32BE(v, p + 1); p += 5; }
      else { this.buf[p] = 0xcf; this.buf.writeBigUInt64BE(BigInt(v), p + 1); p += 9; }
    } else if (v >= -0x20) buf[p++] = 0xe0 | (v + 0x20);
    else if (v >= -0x80) { buf[p] = 0xd0; buf.writeInt8(v, p + 1); p += 2; }
    else if (v >= -0x8000) { buf[p] = 0xd1; buf.writeInt16BE(v, p + 1); p += 3; }
    else if (v >= -0x80000000) { buf[p] = 0xd2; buf.writeInt32BE(v, p + 1); p += 5; }
    else { this.buf[p] = 0xd3; this.buf.writeBigInt64BE(BigInt(v), p + 1); p += 9; }
    this.pos = p;
  }

  bigint(v) {
    if (v >= MIN_SAFE_BIG && v <= MAX_SAFE_BIG) {
      this.int(Number(v));
      return;
    }
    if (v < MIN_INT64 || v > MAX_UINT64) {
      throw new WireError(INVALID, `integer ${v} is outside the 64-bit range`);
    }
    this.ensure(9);
    if (v >= 0n) {
      this.buf[this.pos] = 0xcf;
      this.buf.writeBigUInt64BE(v, this.pos + 1);
    } else {
      this.buf[this.pos] = 0xd3;
      this.buf.writeBigInt64BE(v, this.pos + 1);
    }
    this.pos += 9;
  }

  string(s) {
    const n = s.length;
    // Short ASCII strings (keys, most values) are copied by hand; longer ones (ids, built
    // by concatenation) by Buffer#write, which flattens them once instead of per character.
    if (n < 16) {
      this.ensure(1 + n * 3);
      const buf = this.buf;
      const start = this.pos;
      let p = start + 1;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[p++] = c;
      }
      if (i === n) {
        buf[start] = 0xa0 | n;
        this.pos = p;
        return;
      }
    }
    const bytes = Buffer.byteLength(s, 'utf8');
    this.ensure(5 + bytes);
    const buf = this.buf;
    let p = this.pos;
    if (bytes < 32) buf[p++] = 0xa0 | bytes;
    else if (bytes < 0x100) { buf[p++] = 0xd9; buf[p++] = bytes; }
    else if (bytes < 0x10000) { buf[p] = 0xda; buf.writeUInt16BE(bytes, p + 1); p += 3; }
    else { buf[p] = 0xdb; buf.writeUInt32BE(bytes, p + 1); p += 5; }
    buf.write(s, p, bytes, 'utf8');
    this.pos = p + bytes;
  }

  /** Bytes that are already msgpack (a pre-encoded key or value). */
  raw(bytes) {
    const n = bytes.length;
    this.ensure(n);
    const buf = this.buf;
    let p = this.pos;
    if (n > 32) {
      buf.set(bytes, p);
    } else {
      for (let i = 0; i < n; i++) buf[p + i] = bytes[i]; // TypedArray#set costs more than a few bytes
    }
    this.pos = p + n;
  }

  arrayHeader(n) {
    this.ensure(5);
    if (n < 16) this.buf[this.pos++] = 0x90 | n;
    else if (n < 0x10000) { this.buf[this.pos] = 0xdc; this.buf.writeUInt16BE(n, this.pos + 1); this.pos += 3; }
    else { this.buf[this.pos] = 0xdd; this.buf.writeUInt32BE(n, this.pos + 1); this.pos += 5; }
  }

  mapHeader(n) {
    this.ensure(5);
    if (n < 16) this.buf[this.pos++] = 0x80 | n;
    else if (n < 0x10000) { this.buf[this.pos] = 0xde; this.buf.writeUInt16BE(n, this.pos + 1); this.pos += 3; }
    else { this.buf[this.pos] = 0xdf; this.buf.writeUInt32BE(n, this.pos + 1); this.pos += 5; }
  }

  array(v, sorted) {
    this.arrayHeader(v.length);
    for (let i = 0; i < v.length; i++) this.value(v[i], sorted);
  }

  object(v, sorted) {
    const keys = Object.keys(v).filter((k) => v[k] !== undefined);
    if (!sorted) keys.sort(compareUtf8);
    this.mapHeader(keys.length);
    for (let i = 0; i < keys.length; i++) {
      this.string(keys[i]);
      this.value(v[keys[i]], sorted);
    }
  }

  /**
   * A plain object whose keys are in canonical order and never integer-like (actor, attrs
   * built by the SDK), without making a key list: one pass counts, one writes.
   */
  flatMap(v) {
    if (!isPlainObject(v)) return this.value(v, true);
    let n = 0;
    for (const k in v) if (v[k] !== undefined) n++;
    this.mapHeader(n);
    for (const k in v) {
      const item = v[k];
      if (item === undefined) continue;
      this.string(k);
      this.value(item, true);
    }
  }

  map(v, sorted) {
    const keys = [];
    for (const [k, item] of v) {
      if (typeof k !== 'string') throw new WireError(MALFORMED, `map key: expected a string, got ${show(k)}`);
      if (item !== undefined) keys.push(k);
    }
    if (!sorted) keys.sort(compareUtf8);
    this.mapHeader(keys.length);
    for (const k of keys) {
      this.string(k);
      this.value(v.get(k), sorted);
    }
  }
}

const shared = new Writer(64 * 1024);

/**
 * Canonical msgpack bytes of `value` (a new Buffer). Map entries whose value
 * is `undefined` are left out, as JSON does; `undefined` elsewhere is nil.
 */
export function pack(value) {
  shared.reset();
  shared.value(value, false);
  return shared.take();
}

/**
 * msgpack bytes of a value whose maps are already in canonical key order
 * (the SDK builds its events that way), skipping the sort of `pack()`.
 * Integer-like keys ("1") are not ordered by insertion in JavaScript objects;
 * use `pack()` for maps that may hold them.
 */
export function packOrdered(value) {
  shared.reset();
  shared.value(value, true);
  return shared.take();
}

const EVENT_KEYS = Object.freeze(Object.fromEntries(
  ['actor', 'attrs', 'duration_us', 'id', 'outcome', 'reason', 'resource', 'severity', 'source', 'span_id',
    'trace_id', 'ts', 'type'].map((k) => [k, packOrdered(k)]),
));
const V_ONE = Buffer.concat([packOrdered('v'), Buffer.from([0x01])]);
let sourceSeen = null; // the last `source` object encoded, and its bytes: one per client, frozen
let sourceBytes = null;

/**
 * The bytes of `packOrdered(event)` for an event built by the SDK (client.js `build()`,
 * the only producer of queued events: exactly the fields of Event v1, in canonical key
 * order, `v` 1, optional ones `undefined` when absent; attrs keys are never integer-like),
 * written field by field: the keys are pre-encoded, `source` (the same frozen object for
 * every event of a client) is encoded once, and no key list is made per map. An object
 * without `v` 1 or `source` takes `packOrdered`. test/wire.test.js checks the bytes are
 * the same over random events.
 */
export function encodeEvent(ev) {
  shared.reset();
  writeEvent(shared, ev);
  return shared.take();
}

/** Append the bytes of `encodeEvent(ev)` to writer `w`. */
function writeEvent(w, ev) {
  if (ev.v !== 1 || ev.source === undefined) {
    w.value(ev, true);
    return;
  }
  const { actor, attrs, duration_us: durationUs, reason, resource, severity, source } = ev;
  let n = 8;
  if (actor !== undefined) n++;
  if (attrs !== undefined) n++;
  if (durationUs !== undefined) n++;
  if (reason !== undefined) n++;
  if (resource !== undefined) n++;
  if (severity !== undefined) n++;
  w.byte(0x80 | n);
  const K = EVENT_KEYS;
  if (actor !== undefined) { w.raw(K.actor); w.flatMap(actor); }
  if (attrs !== undefined) { w.raw(K.attrs); w.flatMap(attrs); }
  if (durationUs !== undefined) { w.raw(K.duration_us); w.value(durationUs, true); }
  w.raw(K.id); w.value(ev.id, true);
  w.raw(K.outcome); w.value(ev.outcome, true);
  if (reason !== undefined) { w.raw(K.reason); w.value(reason, true); }
  if (resource !== undefined) { w.raw(K.resource); w.value(resource, true); }
  if (severity !== undefined) { w.raw(K.severity); w.value(severity, true); }
  w.raw(K.source);
  if (source !== sourceSeen || !Object.isFrozen(source)) {
    const start = w.pos;
    w.value(source, true);
    sourceBytes = Buffer.from(w.buf.subarray(start, w.pos));
    sourceSeen = Object.isFrozen(source) ? source : null;
  } else {
    w.raw(sourceBytes);
  }
  w.raw(K.span_id); w.value(ev.span_id, true);
  w.raw(K.trace_id); w.value(ev.trace_id, true);
  w.raw(K.ts); w.value(ev.ts, true);
  w.raw(K.type); w.value(ev.type, true);
  w.raw(V_ONE);
}

/**
 * Events encoded back to back into one buffer (the sender's batch): `add` encodes one
 * and returns its size, `drop` takes back the one just added (over a limit), `keep`
 * accepts it; `take` returns the kept events as Buffers that are views of one new buffer,
 * in order, so `packPubBody` copies them as one block instead of one part per event.
 */
export class EventBatch {
  constructor() {
    this.w = new Writer(64 * 1024);
    this.ends = [];
  }

  get count() {
    return this.ends.length;
  }

  add(ev) {
    const start = this.w.pos;
    try {
      writeEvent(this.w, ev);
    } catch (err) {
      this.w.pos = start; // nothing half-written stays between two events
      throw err;
    }
    return this.w.pos - start;
  }

  drop(size) {
    this.w.pos -= size;
  }

  keep() {
    this.ends.push(this.w.pos);
  }

  take() {
    const all = this.w.take();
    const out = new Array(this.ends.length);
    let start = 0;
    for (let i = 0; i < out.length; i++) {
      out[i] = all.subarray(start, this.ends[i]);
      start = this.ends[i];
    }
    this.w.reset();
    this.ends.length = 0;
    return out;
  }
}

/**
 * The body of a PUB request from events that are already encoded:
 * `{"events": [...], "seq": seq}` in canonical form, by concatenation, so the
 * sender encodes each event once however many times it is sent or spooled.
 */
export function packPubBody(seq, encodedEvents) {
  const w = new Writer(16);
  w.mapHeader(2);
  w.string('events');
  w.arrayHeader(encodedEvents.length);
  const head = w.take();
  w.reset();
  w.string('seq');
  w.value(seq, true);
  const tail = w.take();
  // Events that lie back to back in one buffer (an EventBatch) are copied as one block.
  const n = encodedEvents.length;
  if (n > 1) {
    const first = encodedEvents[0];
    let end = first.byteOffset + first.length;
    let i = 1;
    for (; i < n; i++) {
      const e = encodedEvents[i];
      if (e.buffer !== first.buffer || e.byteOffset !== end) break;
      end += e.length;
    }
    if (i === n) return Buffer.concat([head, Buffer.from(first.buffer, first.byteOffset, end - first.byteOffset), tail]);
  }
  return Buffer.concat([head, ...encodedEvents, tail]);
}

// ---------------------------------------------------------------------------
// decoding

const refuseExt = new ExtensionCodec();
refuseExt.decode = (_data, type) => {
  throw new WireError(MALFORMED, `body: msgpack ext type ${type} is not allowed`);
};

function stringKeysOnly(key) {
  if (typeof key !== 'string') {
    throw new WireError(MALFORMED, `map key: expected a string, got ${show(key)}`);
  }
  return key;
}

/** Safe-range BigInt values become Numbers, recursively (decoded maps are fresh objects). */
function normalizeInts(value) {
  if (typeof value === 'bigint') {
    return value >= MIN_SAFE_BIG && value <= MAX_SAFE_BIG ? Number(value) : value;
  }
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = normalizeInts(value[i]);
    return value;
  }
  for (const key of Object.keys(value)) value[key] = normalizeInts(value[key]);
  return value;
}

/**
 * Decode one msgpack value, bounded by `limits`. The body size is checked
 * first and every declared length is bounded by it, so a small frame cannot
 * make the decoder allocate much. Truncated input, trailing bytes, ext types
 * and non-string map keys raise `WireError` (`malformed` or `too_large`).
 * `bin` values decode to Uint8Array (event validation rejects them).
 */
export function unpack(data, limits = DEFAULT_LIMITS) {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (bytes.length > limits.maxFrameBytes) {
    throw new WireError(TOO_LARGE, `body: ${bytes.length} bytes exceeds the limit of ${limits.maxFrameBytes}`);
  }
  const decoder = new Decoder({
    useBigInt64: true,
    extensionCodec: refuseExt,
    mapKeyConverter: stringKeysOnly,
    maxStrLength: bytes.length,
    maxBinLength: bytes.length,
    maxArrayLength: bytes.length,
    maxMapLength: bytes.length,
    maxExtLength: bytes.length,
  });
  let value;
  try {
    value = decoder.decode(bytes);
  } catch (err) {
    if (err instanceof WireError) throw err;
    if (/^Extra \d+ of/.test(err?.message ?? '')) {
      throw new WireError(MALFORMED, 'body: trailing bytes after the msgpack value');
    }
    throw new WireError(MALFORMED, `body: not valid msgpack (${err?.message ?? err})`);
  }
  return normalizeInts(value);
}

// ---------------------------------------------------------------------------
// frames

/** The three frames of a request or reply. */
export function encodeFrames(command, body) {
  return [MAGIC, Buffer.from(command), Buffer.isBuffer(body) ? body : pack(body)];
}

/** Split and decode `[MAGIC, command, body]`; returns `[command, body]` or throws WireError. */
export function decodeFrames(frames, limits = DEFAULT_LIMITS) {
  const list = Array.from(frames);
  if (list.length !== 3) {
    throw new WireError(MALFORMED, `frames: expected 3 (SECBUS1, command, body), got ${list.length}`);
  }
  const [magic, command, body] = list.map((f) => Buffer.from(f.buffer ? f : Buffer.from(f)));
  if (!magic.equals(MAGIC)) {
    const text = magic.toString('latin1');
    if (/^SECBUS\d+$/.test(text)) {
      throw new WireError(UNSUPPORTED_VERSION, `frame 0: protocol ${text} is not supported; this side speaks SECBUS1`);
    }
    throw new WireError(MALFORMED, `frame 0: expected "SECBUS1", got ${show(text)}`);
  }
  const name = command.toString('latin1');
  if (!COMMANDS.includes(name)) {
    throw new WireError(MALFORMED, `frame 1: unknown command ${show(name)}; expected one of ${COMMANDS.join(', ')}`);
  }
  const value = unpack(body, limits);
  if (!isPlainObject(value)) {
    throw new WireError(MALFORMED, `body: expected a map, got ${Array.isArray(value) ? 'array' : show(value)}`);
  }
  return [name, value];
}

function isUint(value) {
  return (typeof value === 'bigint' && value >= 0n) || (Number.isSafeInteger(value) && value >= 0);
}

/**
 * Check a PUB body's envelope; returns `[seq, events]`. Events are validated
 * one by one afterwards (a bad event is rejected inside the ACK).
 */
export function checkPub(body, bodyBytes, limits = DEFAULT_LIMITS) {
  const seq = body?.seq;
  if (!isUint(seq)) {
    throw new WireError(MALFORMED, `seq: expected an unsigned integer, got ${show(seq)}`, 'seq');
  }
  const events = body.events;
  if (!Array.isArray(events)) {
    throw new WireError(MALFORMED, `events: expected an array of events, got ${show(events)}`, 'events');
  }
  if (events.length > limits.maxBatchEvents) {
    throw new WireError(TOO_LARGE, `events: batch of ${events.length} events exceeds the limit of ${limits.maxBatchEvents}`, 'events');
  }
  if (bodyBytes > limits.maxBatchBytes) {
    throw new WireError(TOO_LARGE, `events: batch of ${bodyBytes} bytes exceeds the limit of ${limits.maxBatchBytes}`, 'events');
  }
  return [seq, events];
}
