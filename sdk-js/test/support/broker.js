/**
 * The real broker (`secbus serve`) as a subprocess for the Node tests.
 *
 * It binds port 0 (or the ports given) and reports what it got in
 * `<data_dir>/broker.json`; readiness is a PONG to our PING. `restart()`
 * reuses the same ports and data, so clients reconnect by themselves. Stored
 * events are read through the public CLI (`secbus trace ID --json`) and
 * `/healthz`. The binary is `../.venv/bin/secbus` (made by `make test`), or
 * `$SECBUS_BIN`.
 */

import { spawn } from 'node:child_process';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Dealer } from 'zeromq';
import { MAGIC, decodeFrames } from '../../src/wire.js';
import { waitUntil } from './wait.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../../..');
export const SECBUS = process.env.SECBUS_BIN ?? path.join(REPO, '.venv', 'bin', 'secbus');
const run = promisify(execFile);

/**
 * Why broker tests cannot run here, or false. The broker lands in its own
 * commits (like the Python SDK's tests, which importorskip `secbus.ingest`).
 */
export const BROKER_MISSING = !existsSync(SECBUS)
  ? `no secbus binary at ${SECBUS} (make test creates .venv)`
  : !existsSync(path.join(REPO, 'bus', 'ingest', '__init__.py')) || !existsSync(path.join(REPO, 'bus', 'app.py'))
    ? 'the broker (bus/ingest, bus/app.py) is not in this tree yet'
    : false;

/** Why CURVE tests cannot run here, or false. */
export const CURVE_MISSING = BROKER_MISSING || (!existsSync(path.join(REPO, 'bus', 'auth', 'zap.py')) ? 'the broker has no CURVE support in this tree yet' : false);

/** A TCP port nothing listens on right now. */
export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function tomlValue(v) {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'boolean' || typeof v === 'number') return String(v);
  if (Array.isArray(v)) return `[${v.map(tomlValue).join(', ')}]`;
  throw new TypeError(`cannot write ${v} as TOML`);
}

const isTable = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isTableArray = (v) => Array.isArray(v) && v.length > 0 && v.every(isTable);

/** TOML for test configs: scalars, lists of scalars, tables and arrays of tables. */
function toToml(data, prefix = '') {
  const lines = [];
  for (const [k, v] of Object.entries(data)) if (!isTable(v) && !isTableArray(v)) lines.push(`${k} = ${tomlValue(v)}`);
  for (const [k, v] of Object.entries(data)) {
    if (isTable(v)) lines.push(`\n[${prefix}${k}]`, toToml(v, `${prefix}${k}.`));
    if (isTableArray(v)) for (const item of v) lines.push(`\n[[${prefix}${k}]]`, toToml(item, `${prefix}${k}.`));
  }
  return lines.join('\n');
}

function merge(base, over) {
  const out = { ...base };
  for (const [k, v] of Object.entries(over ?? {})) {
    out[k] = v !== null && typeof v === 'object' && !Array.isArray(v) && typeof out[k] === 'object' ? merge(out[k], v) : v;
  }
  return out;
}

/** One PING, resolved with the PONG body or null after `timeoutMs`. */
export async function ping(endpoint, timeoutMs = 500, curve = null) {
  const sock = new Dealer({ linger: 0, receiveTimeout: timeoutMs, sendTimeout: timeoutMs });
  if (curve !== null) {
    sock.curveServerKey = curve.serverKey;
    sock.curvePublicKey = curve.publicKey;
    sock.curveSecretKey = curve.secretKey;
  }
  sock.connect(endpoint);
  try {
    await sock.send([MAGIC, 'PING', Buffer.from([0x80])]);
    const [command, body] = decodeFrames(await sock.receive());
    return command === 'PONG' ? body : null;
  } catch {
    return null;
  } finally {
    sock.close();
  }
}

export class Broker {
  /**
   * @param {object} [opts]
   * @param {object} [opts.config] merged over the test defaults
   * @param {number} [opts.port] ingest port (default: any free one)
   * @param {{serverKey: string, publicKey: string, secretKey: string}} [opts.curve] keys for the readiness PING
   */
  constructor({ config = {}, port = 0, curve = null } = {}) {
    this.curve = curve;
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'secbus-js-broker-'));
    this.dataDir = path.join(this.dir, 'data');
    mkdirSync(this.dataDir);
    this.configPath = path.join(this.dir, 'secbus.toml');
    this.logPath = path.join(this.dir, 'broker.log');
    this.config = merge({
      data_dir: this.dataDir,
      ingest: { endpoint: `tcp://127.0.0.1:${port}` },
      feed: { endpoint: 'tcp://127.0.0.1:0' },
      http: { address: '127.0.0.1:0' },
      handlers: { enabled: [], shutdown_deadline_s: 5.0 },
    }, config);
    this.proc = null;
    this.ingest = this.config.ingest.endpoint;
    this.http = '';
  }

  start() {
    if (this.running) throw new Error('broker already running');
    writeFileSync(this.configPath, `${toToml(this.config)}\n`);
    rmSync(path.join(this.dataDir, 'broker.json'), { force: true });
    const log = openSync(this.logPath, 'a');
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SECBUS_')));
    this.proc = spawn(SECBUS, ['serve', '--config', this.configPath], { cwd: this.dir, stdio: ['ignore', log, log], env });
    closeSync(log);
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => resolve(code ?? signal)));
    return this;
  }

  get running() {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  runtime() {
    if (!this.running) throw new Error(`broker exited (${this.proc?.exitCode ?? this.proc?.signalCode}):\n${this.logText()}`);
    try {
      const data = JSON.parse(readFileSync(path.join(this.dataDir, 'broker.json'), 'utf8'));
      return data.pid === this.proc.pid ? data : null;
    } catch {
      return null;
    }
  }

  /** Wait for broker.json and a PONG; pin the ports for restart(). */
  async waitReady(timeoutMs = 20000) {
    const rt = await waitUntil(() => this.runtime(), timeoutMs, () => `broker.json\n${this.logText()}`);
    this.ingest = rt.ingest;
    this.http = rt.http;
    this.config.ingest.endpoint = rt.ingest;
    if (rt.feed) this.config.feed.endpoint = rt.feed;
    this.config.http.address = rt.http;
    await waitUntil(() => ping(this.ingest, 500, this.curve), timeoutMs, () => `PONG from ${this.ingest}\n${this.logText()}`);
    return this;
  }

  /** SIGTERM and wait for the exit. */
  async stop() {
    if (!this.running) return;
    this.proc.kill('SIGTERM');
    await this.exited;
  }

  /** SIGKILL: the crash case. */
  async kill() {
    if (!this.running) return;
    this.proc.kill('SIGKILL');
    await this.exited;
  }

  async restart() {
    await this.stop();
    this.start();
    return this.waitReady();
  }

  async healthz() {
    const res = await fetch(`http://${this.http}/healthz`);
    return res.json();
  }

  /** Number of events in the broker's log (from /healthz). */
  async eventCount() {
    const h = await this.healthz();
    return h.log.streams.events.count;
  }

  /** Every stored event (up to `limit`), as `secbus events --json` prints them. */
  async events(limit = 100000) {
    const { stdout } = await run(SECBUS, ['events', '--data-dir', this.dataDir, '--json', '--limit', String(limit)], { maxBuffer: 256 * 1024 * 1024 });
    return stdout.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  }

  /** Every stored event of a trace, as `secbus trace ID --json` prints them (one JSON object per line). */
  async trace(traceId) {
    const { stdout } = await run(SECBUS, ['trace', traceId, '--data-dir', this.dataDir, '--json'], { maxBuffer: 256 * 1024 * 1024 });
    return stdout.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  }

  logText() {
    try {
      return readFileSync(this.logPath, 'utf8').split('\n').slice(-60).join('\n');
    } catch {
      return '(no broker log)';
    }
  }

  /** Stop (or kill if it hangs) and remove the temp dir. */
  async dispose() {
    if (this.running) {
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10000);
      await this.stop();
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Start a broker on free ports (or `port` for ingest) and wait until it answers. */
export async function startBroker(opts = {}) {
  const broker = new Broker(opts);
  broker.start();
  try {
    await broker.waitReady();
  } catch (err) {
    await broker.kill();
    throw err;
  }
  return broker;
}

/** A fresh temp directory (for spools and fallback files). */
export function tempDir(prefix = 'secbus-js-') {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}
