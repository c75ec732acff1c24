/**
 * The `fallback` sink of the `onFull: "fallback"` policy: where an event
 * goes, synchronously, when the queue is full, so latency stays bounded
 * without a silent loss.
 *
 * A path gets one JSON object per line appended (the file is opened once,
 * in append mode, created with mode 0600); `ts` and other integers beyond
 * 2^53 are written as JSON integers, exactly, as Python's json does. A
 * function is called with the event object (ts as BigInt). Either may throw;
 * the client then counts the event as dropped.
 */

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { writeAll } from './files.js';

const BIG = '\u0000big:';
const BIG_RE = /"\\u0000big:(-?\d+)"/g;

/** JSON text of an event, BigInt values as exact JSON integers. */
export function eventToJson(event) {
  return JSON.stringify(event, (_key, value) => (typeof value === 'bigint' ? `${BIG}${value}` : value)).replace(BIG_RE, '$1');
}

/**
 * Build the sink for a `fallback` option value.
 * @param {string | ((event: object) => void)} target
 * @returns {{write(event: object): void, close(): void}}
 */
export function makeFallback(target) {
  if (typeof target === 'function') {
    return { write: (event) => { target(event); }, close() {} };
  }
  if (typeof target === 'string' && target.length > 0) {
    let fd = null;
    return {
      write(event) {
        let line = `${eventToJson(event)}\n`;
        if (fd === null) {
          fd = openSync(target, 'a+', 0o600);
          // after a failed write (a full disk) or a crash mid-line, the next line stands alone
          if (!endsWithNewline(fd)) line = `\n${line}`;
        }
        try {
          writeAll(fd, line);
        } catch (err) {
          // The event counts as dropped; the file is not cut back (a forked child may append too).
          try { closeSync(fd); } catch { /* gone */ }
          fd = null;
          throw err;
        }
      },
      close() {
        if (fd !== null) closeSync(fd);
        fd = null;
      },
    };
  }
  throw new TypeError(`fallback: expected a file path or a function, got ${typeof target}`);
}

function endsWithNewline(fd) {
  const { size } = fstatSync(fd);
  if (size === 0) return true;
  const last = Buffer.alloc(1);
  readSync(fd, last, 0, 1, size - 1);
  return last[0] === 0x0a;
}
