/**
 * Event v1: the fields, their rules, and validation with precise errors.
 *
 * A port of the Python reference (sdk-python/secbus_sdk/event.py): the same
 * rules, checked in the same order, so both SDKs and the broker report the
 * same code and field for the same bad event (proto/vectors prove it).
 * `validateEvent` returns a new object in canonical key order with integral
 * numbers normalised, ready for `packOrdered`. Every failure throws a
 * `WireError` whose code is `invalid`, `unsupported_version` or `too_large`
 * and whose message names the field and the offending value.
 *
 * JavaScript has one number type: an "integer" here is a safe-integer Number
 * or a BigInt (the decoder gives BigInt beyond 2^53, such as `ts`); any other
 * finite Number is a float. Strings must be well-formed Unicode: a lone
 * surrogate cannot be written as UTF-8 and would be silently replaced.
 *
 * The ids (UUIDv7, trace and span ids) are cut from a pooled random buffer
 * and its hex text: `crypto.randomUUID()` gives v4 only, and one
 * `randomFillSync` + `toString('hex')` per 4 KiB keeps an id near 100 ns.
 */

import { randomFillSync } from 'node:crypto';
import { DEFAULT_LIMITS, INVALID, TOO_LARGE, UNSUPPORTED_VERSION, WireError, compareUtf8, show } from './wire.js';

export const EVENT_VERSION = 1;

export const OUTCOMES = Object.freeze(['success', 'failure', 'error', 'unknown']);
export const SEVERITIES = Object.freeze(['info', 'low', 'medium', 'high', 'critical']);
export const CATEGORIES = Object.freeze(['authn', 'authz', 'config', 'perf', 'security']);
export const ACTOR_FIELDS = Object.freeze(['ip', 'key_id', 'session', 'user']);
export const BROKER_FIELDS = Object.freeze(['publisher', 'received_ns', 'seq', 'tenant']);
export const REQUIRED_FIELDS = Object.freeze(['id', 'outcome', 'source', 'span_id', 'trace_id', 'ts', 'type', 'v']);

export const TYPE_RE = /^[a-z0-9_]+(?:\.[a-z0-9_]+)+$/;
export const ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
export const TRACE_ID_RE = /^[0-9a-f]{32}$/;
export const SPAN_ID_RE = /^[0-9a-f]{16}$/;
export const ATTR_KEY_RE = /^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$/;
export const FIELD_NAME_RE = /^[a-z][a-z0-9_]{0,63}$/;
export const MAX_TYPE_LEN = 128;
const MAX_INT64 = 2n ** 63n - 1n;
const MAX_UINT64 = 2n ** 64n - 1n;
const MIN_INT64 = -(2n ** 63n);
const MAX_UINT32 = 2n ** 32n - 1n;
const TWO_53 = 2 ** 53;

const OUTCOME_SET = new Set(OUTCOMES);
const SEVERITY_SET = new Set(SEVERITIES);
const ACTOR_SET = new Set(ACTOR_FIELDS);

// ---------------------------------------------------------------------------
// ids

const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let poolHex = '';
let poolPos = POOL_SIZE;
const VARIANT = ['8', '9', 'a', 'b'];
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/** Offset of `n` fresh random bytes in `pool` (and of their hex at 2x in `poolHex`). */
function take(n) {
  if (poolPos + n > POOL_SIZE) {
    randomFillSync(pool);
    poolHex = pool.toString('hex');
    poolPos = 0;
  }
  const at = poolPos;
  poolPos += n;
  return at;
}

let lastMs = -1;
let lastPrefix = '';

/** A UUIDv7 string: 48-bit Unix milliseconds, version 7, variant 10, random rest (RFC 9562 5.7). */
export function newEventId(ms = Date.now()) {
  if (ms !== lastMs) {
    const t = Math.trunc(ms).toString(16).padStart(12, '0').slice(-12);
    lastMs = ms;
    lastPrefix = `${t.slice(0, 8)}-${t.slice(8)}-7`;
  }
  const at = take(10) * 2;
  // 3 random hex, variant (10xx, from the unused low nibble of byte 1) + 3 random hex, 12 random hex.
  return `${lastPrefix}${poolHex.slice(at, at + 3)}-${VARIANT[pool[(at >> 1) + 1] & 3]}${poolHex.slice(at + 4, at + 7)}-${poolHex.slice(at + 8, at + 20)}`;
}

/** 32 random lowercase hex characters, never all zeros. */
export function newTraceId() {
  for (;;) {
    const at = take(16) * 2;
    const value = poolHex.slice(at, at + 32);
    if (value !== ZERO_TRACE) return value;
  }
}

/** 16 random lowercase hex characters, never all zeros. */
export function newSpanId() {
  for (;;) {
    const at = take(8) * 2;
    const value = poolHex.slice(at, at + 16);
    if (value !== ZERO_SPAN) return value;
  }
}

// ---------------------------------------------------------------------------
// checks

function fail(field, message, code = INVALID) {
  return new WireError(code, `${field}: ${message}`, field);
}

/** A safe-integer Number or a BigInt. */
export function isInteger(value) {
  return typeof value === 'bigint' || Number.isSafeInteger(value);
}

export function isPlainObject(value) {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function kindName(value) {
  if (Array.isArray(value)) return 'list';
  if (isPlainObject(value)) return 'map';
  return typeof value;
}

export function checkStr(field, value, limits = DEFAULT_LIMITS) {
  if (typeof value !== 'string') throw fail(field, `expected a string, got ${show(value)}`);
  if (value.length * 3 > limits.maxStringBytes) {
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes > limits.maxStringBytes) {
      throw fail(field, `string of ${bytes} bytes exceeds the limit of ${limits.maxStringBytes}`);
    }
  }
  if (!value.isWellFormed()) throw fail(field, `string holds a lone surrogate, which is not valid Unicode: ${show(value)}`);
  return value;
}

function checkUint(field, value, maximum = MAX_UINT64) {
  const ok = typeof value === 'bigint'
    ? value >= 0n && value <= maximum
    : Number.isSafeInteger(value) && value >= 0 && BigInt(value) <= maximum;
  if (!ok) throw fail(field, `expected an integer from 0 to ${maximum}, got ${show(value)}`);
  return value;
}

function checkScalar(field, value, limits) {
  switch (typeof value) {
    case 'string':
      return checkStr(field, value, limits);
    case 'number':
      if (!Number.isFinite(value)) throw fail(field, `non-finite number ${value} is not allowed`);
      return Number.isInteger(value) && Math.abs(value) < TWO_53 ? value + 0 : value;
    case 'bigint':
      if (value < MIN_INT64 || value > MAX_UINT64) throw fail(field, `integer ${value} is outside the 64-bit range`);
      return value;
    case 'boolean':
      return value;
    default:
      if (value === null) return value;
      if (Array.isArray(value) || isPlainObject(value)) {
        throw fail(field, `nesting is not allowed here, got ${kindName(value)}`);
      }
      throw fail(field, `expected a string, number, boolean or nil, got ${show(value)}`);
  }
}

/** A scalar or a list of scalars (attrs values and unknown fields). */
function checkValue(field, value, limits) {
  if (Array.isArray(value)) {
    if (value.length > limits.maxListItems) {
      throw fail(field, `list of ${value.length} items exceeds the limit of ${limits.maxListItems}`);
    }
    return value.map((item, i) => checkScalar(`${field}[${i}]`, item, limits));
  }
  return checkScalar(field, value, limits);
}

function checkMap(field, value) {
  if (!isPlainObject(value)) throw fail(field, `expected a map, got ${show(value)}`);
  return value;
}

/** Keys of a map whose value is not `undefined`, in canonical order. */
function sortedKeys(map) {
  return Object.keys(map).filter((k) => map[k] !== undefined).sort(compareUtf8);
}

export function checkSource(value, limits = DEFAULT_LIMITS) {
  const source = checkMap('source', value);
  const out = {};
  for (const key of sortedKeys(source)) {
    const item = source[key];
    const field = `source.${key}`;
    if (key === 'pid') out[key] = checkUint(field, item, MAX_UINT32);
    else if (key === 'platform' || key === 'sdk' || key === 'service' || key === 'host') out[key] = checkStr(field, item, limits);
    else if (FIELD_NAME_RE.test(key)) out[key] = checkScalar(field, item, limits);
    else throw fail('source', `invalid key ${show(key)}`);
  }
  for (const required of ['platform', 'sdk', 'service']) {
    if (!(required in out)) throw fail(`source.${required}`, 'required field is missing');
    if (!out[required]) throw fail(`source.${required}`, 'must not be empty');
  }
  return out;
}

export function checkActor(value, limits = DEFAULT_LIMITS) {
  const fast = actorFast(value, limits);
  if (fast !== null) return fast;
  const actor = checkMap('actor', value);
  const out = {};
  for (const key of sortedKeys(actor)) {
    if (ACTOR_SET.has(key)) out[key] = checkStr(`actor.${key}`, actor[key], limits);
    else if (FIELD_NAME_RE.test(key)) out[key] = checkScalar(`actor.${key}`, actor[key], limits);
    else throw fail('actor', `invalid key ${show(key)}`);
  }
  return out;
}

/** The common actor (only known fields, short well-formed strings) without sorting; else null. */
function actorFast(value, limits) {
  if (!isPlainObject(value)) return null;
  const max = limits.maxStringBytes / 3;
  for (const key in value) {
    const item = value[key];
    if (!ACTOR_SET.has(key) || typeof item !== 'string' || item.length > max || !item.isWellFormed()) return null;
  }
  const out = {};
  if (value.ip !== undefined) out.ip = value.ip;
  if (value.key_id !== undefined) out.key_id = value.key_id;
  if (value.session !== undefined) out.session = value.session;
  if (value.user !== undefined) out.user = value.user;
  return out;
}

const knownAttrKeys = new Set(); // attr keys that passed ATTR_KEY_RE (bounded; most programs use a few)
const KNOWN_ATTR_KEYS_MAX = 4096;

/**
 * The common attrs (keys already in canonical order, each seen before or matching the
 * key rule; short strings, safe integers, booleans, null) copied in one pass without key
 * lists, sorting or per-key field names; else null (the full rules decide, and name the
 * field on failure). Keys matching ATTR_KEY_RE are ASCII, so `>` is the UTF-8 byte order,
 * and never integer-like, so `for...in` visits them in insertion order.
 */
function attrsFast(value, limits) {
  if (!isPlainObject(value)) return null;
  const maxChars = limits.maxStringBytes / 3;
  let prev = '';
  let n = 0;
  for (const key in value) {
    if (!(key > prev) || ++n > limits.maxAttrs) return null;
    prev = key;
    if (!knownAttrKeys.has(key)) {
      if (!ATTR_KEY_RE.test(key)) return null;
      if (knownAttrKeys.size < KNOWN_ATTR_KEYS_MAX) knownAttrKeys.add(key);
    }
    const item = value[key];
    switch (typeof item) {
      case 'string':
        if (item.length > maxChars || !item.isWellFormed()) return null;
        break;
      case 'number':
        if (!Number.isSafeInteger(item) || Object.is(item, -0)) return null; // floats: normalised by the full rules
        break;
      case 'boolean':
        break;
      default:
        if (item !== null) return null; // lists, BigInt, undefined, anything else
    }
  }
  const out = {};
  for (const key in value) out[key] = value[key];
  return out;
}

export function checkAttrs(value, limits = DEFAULT_LIMITS) {
  const fast = attrsFast(value, limits);
  if (fast !== null) return fast;
  const attrs = checkMap('attrs', value);
  const keys = sortedKeys(attrs);
  if (keys.length > limits.maxAttrs) {
    throw fail('attrs', `${keys.length} attrs exceed the limit of ${limits.maxAttrs}`);
  }
  const out = {};
  for (const key of keys) {
    if (!ATTR_KEY_RE.test(key)) {
      throw fail('attrs', `invalid key ${show(key)}: keys match [A-Za-z_][A-Za-z0-9_.:-]{0,127}`);
    }
    out[key] = checkValue(`attrs.${key}`, attrs[key], limits);
  }
  return out;
}

function checkHexId(field, value, pattern, width) {
  if (typeof value !== 'string' || !pattern.test(value)) {
    throw fail(field, `expected ${width} lowercase hex characters, got ${show(value)}`);
  }
  if (value === '0'.repeat(width)) throw fail(field, 'must not be all zeros');
  return value;
}

export function checkType(value) {
  if (typeof value !== 'string' || value.length > MAX_TYPE_LEN || !TYPE_RE.test(value)) {
    throw fail('type', `expected lowercase dotted segments of [a-z0-9_] (at least two, at most ${MAX_TYPE_LEN} characters), got ${show(value)}`);
  }
  return value;
}

function checkEnum(field, value, allowed, names) {
  if (typeof value !== 'string' || !allowed.has(value)) {
    throw fail(field, `expected one of ${names.join(', ')}, got ${show(value)}`);
  }
  return value;
}

export function checkOutcome(value) {
  return checkEnum('outcome', value, OUTCOME_SET, OUTCOMES);
}

export function checkSeverity(value) {
  return checkEnum('severity', value, SEVERITY_SET, SEVERITIES);
}

function checkField(key, value, limits) {
  switch (key) {
    case 'id':
      if (typeof value !== 'string' || !ID_RE.test(value)) {
        throw fail('id', `expected a lowercase canonical UUIDv7 string, got ${show(value)}`);
      }
      return value;
    case 'ts':
      return checkUint('ts', value, MAX_INT64);
    case 'type':
      return checkType(value);
    case 'outcome':
      return checkOutcome(value);
    case 'trace_id':
      return checkHexId('trace_id', value, TRACE_ID_RE, 32);
    case 'span_id':
      return checkHexId('span_id', value, SPAN_ID_RE, 16);
    case 'source':
      return checkSource(value, limits);
    case 'severity':
      return checkSeverity(value);
    case 'actor':
      return checkActor(value, limits);
    case 'attrs':
      return checkAttrs(value, limits);
    case 'resource':
    case 'reason':
    case 'publisher':
    case 'tenant':
      return checkStr(key, value, limits);
    case 'duration_us':
    case 'seq':
    case 'received_ns':
      return checkUint(key, value, MAX_INT64);
    default:
      if (!FIELD_NAME_RE.test(key)) throw fail('event', `invalid field name ${show(key)}`);
      // An unknown optional field from a newer minor version: tolerated, kept.
      return checkValue(key, value, limits);
  }
}

/**
 * Check one event; return it as a new object in canonical key order.
 * Throws `WireError` with code `unsupported_version` for an unknown major
 * `v`, `invalid` for any other rule broken.
 */
export function validateEvent(event, limits = DEFAULT_LIMITS) {
  if (!isPlainObject(event)) throw fail('event', `expected a map, got ${show(event)}`);
  const version = event.v;
  if (version === undefined || version === null) throw fail('v', 'required field is missing');
  if (!isInteger(version)) throw fail('v', `expected the integer 1, got ${show(version)}`);
  if (version != EVENT_VERSION) { // eslint-disable-line eqeqeq -- 1n and 1 are both version 1
    throw fail('v', `event version ${version} is not supported (this side speaks 1)`, UNSUPPORTED_VERSION);
  }
  for (const name of REQUIRED_FIELDS) {
    if (!(name in event) || event[name] === undefined) throw fail(name, 'required field is missing');
  }
  const out = {};
  for (const key of sortedKeys(event)) {
    out[key] = key === 'v' ? EVENT_VERSION : checkField(key, event[key], limits);
  }
  return out;
}

/** Reject an encoded event larger than `limits.maxEventBytes`. */
export function checkEventSize(packed, limits = DEFAULT_LIMITS) {
  if (packed.length > limits.maxEventBytes) {
    throw new WireError(TOO_LARGE, `event: ${packed.length} bytes exceeds the limit of ${limits.maxEventBytes}`, 'event');
  }
}

/** The category of an event type: its first segment (`authn`, `authz`, ...). */
export function category(eventType) {
  return eventType.split('.', 1)[0];
}

/** Validate selected fields (for checking caller input at emit time). */
export function validateFields(fields, limits = DEFAULT_LIMITS) {
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined) checkField(key, value, limits);
  }
}
