/**
 * CURVE keys for the client: values or ZeroMQ certificate files.
 *
 * `serverKey` is the broker's public key, `publicKey`/`secretKey` this
 * client's pair; each may be the 40-character Z85 value or a path to a key
 * file in ZeroMQ's certificate format (what `secbus keys generate`, pyzmq's
 * `zmq.auth` and czmq's `zcert` write):
 *
 *     metadata
 *     curve
 *         public-key = "<40 z85 characters>"
 *         secret-key = "<40 z85 characters>"     (NAME.key_secret only)
 *
 * Same rules as the Python SDK and the broker: a secret key file readable by
 * group or others is refused (as OpenSSH refuses a loose ~/.ssh/id_*), the
 * public key comes from the secret file unless given, a pair is both or
 * neither, and an error never echoes a secret. Parsing is a few lines of
 * regex: no npm package reads this format.
 */

import { readFileSync, statSync } from 'node:fs';

const Z85_KEY_RE = /^[0-9A-Za-z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/;
const CERT_LINE_RE = /^\s*(public-key|secret-key)\s*=\s*"([^"]*)"\s*$/gm;

/** A key option that is a path rather than a 40-character value. */
function isPath(value) {
  return typeof value === 'string' && value.trim().length !== 40;
}

function keyError(name, message) {
  return new TypeError(`option ${name}: ${message}`);
}

/** `{publicKey, secretKey}` from a certificate file (secretKey null when it holds none). */
export function readCertificate(name, file, secret) {
  let st;
  try {
    st = statSync(file);
  } catch {
    // never echo what may be a mistyped secret value
    const shown = secret ? 'a value' : JSON.stringify(file);
    throw keyError(name, `expected a 40-character Z85 CURVE key or an existing key file, got ${shown} of length ${file.length}`);
  }
  if (!st.isFile()) throw keyError(name, `${file} is not a regular file`);
  if (secret && (st.mode & 0o077) !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
    throw keyError(name, `${file}: mode ${mode} is too open; a secret key file must not be accessible by group or others (run: chmod 600 ${file})`);
  }
  const found = {};
  for (const [, kind, value] of readFileSync(file, 'latin1').matchAll(CERT_LINE_RE)) found[kind] = value;
  const publicKey = found['public-key'] ?? null;
  const secretKey = found['secret-key'] ?? null;
  if (publicKey === null || !Z85_KEY_RE.test(publicKey)) throw keyError(name, `${file} holds no valid public-key`);
  if (secret && (secretKey === null || !Z85_KEY_RE.test(secretKey))) {
    throw keyError(name, `${file} holds no secret-key; give the NAME.key_secret file, not NAME.key`);
  }
  return { publicKey, secretKey };
}

/**
 * Resolve the CURVE options to Z85 values: `{serverKey, publicKey, secretKey}`
 * or null when CURVE is off. Throws a TypeError naming the option.
 */
export function resolveCurveKeys({ serverKey = null, publicKey = null, secretKey = null }) {
  if (serverKey === null || serverKey === undefined) {
    if (publicKey || secretKey) throw keyError('serverKey', 'publicKey/secretKey are given but serverKey (the broker\'s public key) is not');
    return null;
  }
  for (const [name, value] of [['serverKey', serverKey], ['publicKey', publicKey], ['secretKey', secretKey]]) {
    if (value !== null && value !== undefined && typeof value !== 'string') throw keyError(name, `expected a string (a Z85 key or a key file path), got ${typeof value}`);
  }
  let server = serverKey;
  let pub = publicKey;
  let sec = secretKey;
  if (isPath(server)) server = readCertificate('serverKey', server, false).publicKey;
  if (pub !== null && isPath(pub)) pub = readCertificate('publicKey', pub, false).publicKey;
  if (sec !== null && isPath(sec)) {
    const cert = readCertificate('secretKey', sec, true);
    sec = cert.secretKey;
    if (pub === null) pub = cert.publicKey;
  }
  for (const [name, value] of [['serverKey', server], ['publicKey', pub], ['secretKey', sec]]) {
    if (value !== null && !Z85_KEY_RE.test(value.trim())) {
      const shown = name === 'secretKey' ? 'a value' : JSON.stringify(value);
      throw keyError(name, `expected a 40-character Z85 CURVE key, got ${shown} of length ${value.length}`);
    }
  }
  if ((pub === null) !== (sec === null)) throw keyError(pub === null ? 'publicKey' : 'secretKey', 'publicKey and secretKey go together: give both or neither');
  return { serverKey: server.trim(), publicKey: pub?.trim() ?? null, secretKey: sec?.trim() ?? null };
}
