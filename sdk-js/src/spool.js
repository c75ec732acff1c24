/**
 * The disk spool: where events wait while the broker is unreachable, so an
 * outage (or a restart of either side in the middle of one) loses nothing.
 *
 * Why hand-written: npm has no well-kept, dependency-free append log with
 * per-record checksums and synchronous writes (which the `exit` hook needs:
 * Node runs no asynchronous work after `process.exit()`); the format is
 * small enough to own, and it is documented in README.md.
 *
 * Layout of `spoolDir` (created with mode 0700):
 *   node.lock                     pid of the owning process (O_EXCL create)
 *   node-0000000000000001.seg     segments, replayed in name order
 * A segment starts with the 8 bytes `SBSPOOL1`, then records:
 *   u32 big-endian payload length | u32 big-endian CRC-32 of the payload | payload
 * where the payload is one event in canonical msgpack, exactly the bytes
 * that are sent. A new process never appends to an old segment, so a torn
 * write (crash mid-record) can only be the tail of a segment: reading stops
 * there, counts it (`spoolTorn`) and never replays the garbage.
 *
 * Bound: the sum of the segment files' sizes stays <= `maxBytes`; `append`
 * refuses a batch that would cross it and the caller's policy decides.
 * Delete after ACK: the sender removes a segment once every event in it is
 * acknowledged (an event re-sent after a crash is deduplicated by the broker).
 * Writes go to the OS at once (writeAll: a killed process loses nothing);
 * a segment is fsynced when it is sealed and at close, so a machine crash
 * can lose at most the open segment's unsynced tail.
 *
 * Two processes on one directory: the second finds the lock held by a live
 * pid (or by another client of this process) and spools in
 * `spoolDir/proc-<pid>-<n>` instead. Any client, when it
 * opens, adopts the segments of `proc-*` directories whose owner is dead, so
 * a crashed worker's events are replayed by the next one.
 */

import {
  closeSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, unlinkSync,
} from 'node:fs';
import { writeAll } from './files.js';
import path from 'node:path';
import zlib from 'node:zlib';

export const MAGIC = Buffer.from('SBSPOOL1');
const RECORD_HEADER = 8;
const SEGMENT_RE = /^node-(\d{16})\.seg$/;
const LOCK = 'node.lock';

// zlib.crc32 arrived in Node 20.15 / 22.2; the table version covers older 20.x.
const CRC_TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

export const crc32 = typeof zlib.crc32 === 'function'
  ? (buf) => zlib.crc32(buf)
  : (buf) => {
    let c = -1;
    for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
    return (c ^ -1) >>> 0;
  };

function pidAlive(pid) {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

function readLockPid(file) {
  try {
    return Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
  } catch {
    return NaN;
  }
}

/** Take `dir/node.lock` for this process; false if a live process holds it. */
function tryLock(dir) {
  const file = path.join(dir, LOCK);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeAll(fd, `${process.pid}\n`);
      closeSync(fd);
      return true;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      const pid = readLockPid(file);
      if (pid === process.pid) return false; // another client of this process holds it
      if (pidAlive(pid)) return false;
      try { unlinkSync(file); } catch { /* raced with another taker: retry */ }
    }
  }
  return false;
}

/** Parse the records of a segment; stops at the first torn or corrupt one. */
export function parseSegment(data, verify = true) {
  const events = [];
  if (data.length < MAGIC.length || !data.subarray(0, MAGIC.length).equals(MAGIC)) {
    return { events, torn: data.length > 0 };
  }
  let pos = MAGIC.length;
  while (pos < data.length) {
    if (pos + RECORD_HEADER > data.length) return { events, torn: true };
    const length = data.readUInt32BE(pos);
    const crc = data.readUInt32BE(pos + 4);
    const end = pos + RECORD_HEADER + length;
    if (length === 0 || end > data.length) return { events, torn: true };
    const payload = data.subarray(pos + RECORD_HEADER, end);
    if (verify && crc32(payload) !== crc) return { events, torn: true };
    events.push(payload);
    pos = end;
  }
  return { events, torn: false };
}

/** Encode records for a list of payloads, ready to append to a segment. */
export function encodeRecords(payloads) {
  let size = 0;
  for (const p of payloads) size += RECORD_HEADER + p.length;
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  for (const p of payloads) {
    out.writeUInt32BE(p.length, pos);
    out.writeUInt32BE(crc32(p), pos + 4);
    p.copy(out, pos + RECORD_HEADER);
    pos += RECORD_HEADER + p.length;
  }
  return out;
}

export class Spool {
  /**
   * @param {string} dir the spool directory (created if missing)
   * @param {object} opts
   * @param {number} opts.maxBytes bound of the segment files' total size
   * @param {number} [opts.segmentBytes] a segment is sealed once this large
   * @param {(msg: string) => void} [opts.warn]
   */
  constructor(dir, { maxBytes, segmentBytes = 4 * 1024 * 1024, warn = () => {} }) {
    this.baseDir = path.resolve(dir);
    this.maxBytes = maxBytes;
    this.segmentBytes = Math.max(1024, Math.min(segmentBytes, Math.floor(maxBytes / 4) || 1024));
    this.warn = warn;
    this.dir = null;
    this.segments = []; // [{name, bytes, events}], oldest first
    this.bytes = 0;
    this.events = 0;
    this.torn = 0;
    /** why the last append wrote nothing although the records fitted (a full disk), or null */
    this.writeError = null;
    this.nextNumber = 1;
    this.fd = null; // the open (writing) segment, always the last of `segments`
    this.closed = false;
  }

  /** Create the directory, take the lock, adopt orphans, index what is there. */
  open() {
    mkdirSync(this.baseDir, { recursive: true, mode: 0o700 });
    const mode = statSync(this.baseDir).mode & 0o777;
    if (mode & 0o077) { // an existing dir keeps its mode: say so, as the broker does for its data dir
      this.warn(`spool: ${this.baseDir} is open to other users (mode ${mode.toString(8)}): spooled events are security events; chmod 700 it`);
    }
    if (tryLock(this.baseDir)) {
      this.dir = this.baseDir;
    } else {
      for (let n = 0; ; n++) {
        this.dir = path.join(this.baseDir, `proc-${process.pid}-${n}`);
        mkdirSync(this.dir, { recursive: true, mode: 0o700 });
        if (tryLock(this.dir)) break;
        if (n >= 100) throw new Error(`spool: no free sub-directory in ${this.baseDir}`);
      }
    }
    for (const name of readdirSync(this.dir).filter((n) => SEGMENT_RE.test(n)).sort()) {
      this.index(name);
    }
    this.adoptOrphans();
    return this;
  }

  index(name) {
    const file = path.join(this.dir, name);
    const data = readFileSync(file);
    const { events, torn } = parseSegment(data, false);
    this.segments.push({ name, bytes: data.length, events: events.length });
    this.bytes += data.length;
    this.events += events.length;
    const number = Number(SEGMENT_RE.exec(name)[1]);
    if (number >= this.nextNumber) this.nextNumber = number + 1;
    return torn;
  }

  /** Move the segments of dead owners' `proc-*` directories into ours. */
  adoptOrphans() {
    let entries;
    try {
      entries = readdirSync(this.baseDir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (!entry.isDirectory() || !/^proc-\d+-\d+$/.test(entry.name)) continue;
      const other = path.join(this.baseDir, entry.name);
      if (other === this.dir || !tryLock(other)) continue;
      for (const name of readdirSync(other).filter((n) => SEGMENT_RE.test(n)).sort()) {
        const target = this.newName();
        renameSync(path.join(other, name), path.join(this.dir, target));
        this.index(target);
      }
      rmSync(other, { recursive: true, force: true });
    }
  }

  newName() {
    return `node-${String(this.nextNumber++).padStart(16, '0')}.seg`;
  }

  get isEmpty() {
    return this.segments.length === 0;
  }

  /**
   * Append the longest prefix of `payloads` that fits the bound; returns how
   * many were written (so a full spool fills to the last byte it can hold).
   * @param {Buffer[]} payloads
   */
  appendSome(payloads) {
    if (this.append(payloads)) return payloads.length;
    let room = this.maxBytes - this.bytes - (this.fd === null ? MAGIC.length : 0);
    let n = 0;
    while (n < payloads.length && room >= RECORD_HEADER + payloads[n].length) {
      room -= RECORD_HEADER + payloads[n].length;
      n++;
    }
    if (n === 0 || !this.append(payloads.slice(0, n))) return 0;
    return n;
  }

  /** Room for `n` more bytes of records? */
  hasRoom(n) {
    return this.bytes + n + (this.fd === null ? MAGIC.length : 0) <= this.maxBytes;
  }

  /**
   * Append events (encoded) as records; all or nothing. Returns false when
   * the bound would be crossed or the write failed (disk full...).
   * @param {Buffer[]} payloads
   */
  append(payloads) {
    if (this.closed || payloads.length === 0) return payloads.length === 0;
    const records = encodeRecords(payloads);
    if (!this.hasRoom(records.length)) return false;
    try {
      if (this.fd === null) this.startSegment();
      writeAll(this.fd, records);
    } catch (err) {
      this.writeError = `cannot write to ${this.dir}: ${err.message}`;
      this.warn(`spool: ${this.writeError}; the events stay in memory`);
      if (this.fd !== null) this.abandonOpenSegment();
      return false;
    }
    this.writeError = null;
    const seg = this.segments[this.segments.length - 1];
    seg.bytes += records.length;
    seg.events += payloads.length;
    this.bytes += records.length;
    this.events += payloads.length;
    if (seg.bytes >= this.segmentBytes) this.seal();
    return true;
  }

  /**
   * After a failed write: the open segment may end in part of a record. Cut that off (its
   * `bytes` are those before the write) and never append to it again; a segment that holds
   * no event yet is removed, so a disk that stays full does not collect empty segments.
   */
  abandonOpenSegment() {
    const seg = this.segments[this.segments.length - 1];
    try {
      if (seg.events === 0) {
        unlinkSync(path.join(this.dir, seg.name));
        this.segments.pop();
        this.bytes -= seg.bytes;
      } else {
        ftruncateSync(this.fd, seg.bytes);
      }
    } catch { /* the reader skips a torn tail */ }
    try { closeSync(this.fd); } catch { /* gone */ }
    this.fd = null;
  }

  /** Open a new segment; recreates the directory if it was removed under us. */
  startSegment() {
    const name = this.newName();
    const file = path.join(this.dir, name);
    let fd;
    try {
      fd = openSync(file, 'wx', 0o600);
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      this.warn(`spool: ${this.dir} was removed; recreated it`);
      fd = openSync(file, 'wx', 0o600);
    }
    try {
      writeAll(fd, MAGIC);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    this.fd = fd;
    this.segments.push({ name, bytes: MAGIC.length, events: 0 });
    this.bytes += MAGIC.length;
  }

  /** Close the open segment (fsynced); the next append starts a new one. */
  seal() {
    if (this.fd === null) return;
    try { fsyncSync(this.fd); } catch { /* best effort */ }
    closeSync(this.fd);
    this.fd = null;
  }

  /**
   * The oldest segment's name and events, read and checked; seals it first
   * if it is the one being written. Null when the spool is empty.
   * @returns {{name: string, events: Buffer[], torn: boolean} | null}
   */
  readOldest() {
    if (this.segments.length === 0) return null;
    if (this.segments.length === 1 && this.fd !== null) this.seal();
    const seg = this.segments[0];
    let data;
    try {
      data = readFileSync(path.join(this.dir, seg.name));
    } catch (err) {
      this.torn++;
      this.warn(`spool: cannot read ${seg.name} (${seg.events} events): ${err.message}; skipping it`);
      this.remove(seg.name);
      return this.readOldest();
    }
    const { events, torn } = parseSegment(data, true);
    if (torn) {
      this.torn++;
      this.warn(`spool: ${seg.name} ends in a torn or corrupt record after ${events.length} good ones; the rest is skipped`);
      this.events -= seg.events - events.length;
      seg.events = events.length;
    }
    return { name: seg.name, events, torn };
  }

  /** Delete a segment whose events are all acknowledged. */
  remove(name) {
    const i = this.segments.findIndex((s) => s.name === name);
    if (i < 0) return;
    const [seg] = this.segments.splice(i, 1);
    if (i === this.segments.length && this.fd !== null) this.seal();
    this.bytes -= seg.bytes;
    this.events -= seg.events;
    try { unlinkSync(path.join(this.dir, seg.name)); } catch { /* already gone */ }
  }

  /** Seal, release the lock. Idempotent. */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.seal();
    if (this.dir === null) return;
    const lock = path.join(this.dir, LOCK);
    if (readLockPid(lock) === process.pid) {
      try { unlinkSync(lock); } catch { /* gone */ }
    }
    if (this.dir !== this.baseDir && this.segments.length === 0) {
      try { rmSync(this.dir, { recursive: true, force: true }); } catch { /* leave it */ }
    }
  }
}
