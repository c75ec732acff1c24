/**
 * `writeAll(fd, data)`: write every byte or throw.
 *
 * `fs.writeSync` returns how many bytes it wrote and does not loop: on a disk
 * that fills up (or past a file-size limit) the first call writes what fits
 * and returns a short count, and only the next call fails (ENOSPC, EFBIG).
 * Ignoring the count counted a half-written spool record as spooled: its
 * events were lost without a word.
 */
import { writeSync } from 'node:fs';

/**
 * @param {number} fd
 * @param {Buffer | string} data
 */
export function writeAll(fd, data) {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  for (let off = 0; off < buf.length;) {
    const n = writeSync(fd, buf, off, buf.length - off);
    if (n <= 0) throw new Error(`write wrote nothing (${buf.length - off} bytes left)`);
    off += n;
  }
}
