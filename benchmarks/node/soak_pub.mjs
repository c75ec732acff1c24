// Soak publisher (Node SDK): node soak_pub.mjs '<json options>'.
// Emits `rate` events/s for `seconds` with onFull "block", writes every event
// id to idsFile, then flushes with a deadline and prints its stats as JSON.
// The broker is killed and restarted under it the whole time.
import { writeFileSync, appendFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const opts = JSON.parse(process.argv[2]);
const { Client } = await import(pathToFileURL(opts.sdkPath).href);
const client = new Client({ endpoint: opts.endpoint, service: 'soak-node', spoolDir: opts.spoolDir, onFull: 'block', ackTimeout: 1000 });
const TYPES = [['authn.signature.verify', 'success'], ['authn.login', 'failure'], ['authz.permission.check', 'success'],
  ['authn.token.verify', 'error'], ['config.change', 'success']];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
writeFileSync(opts.idsFile, '');
const interval = 1000 / opts.rate;
const start = performance.now();
let n = 0;
let pending = [];
while (performance.now() - start < opts.seconds * 1000) {
  const due = start + n * interval;
  const now = performance.now();
  if (now < due) await sleep(due - now); // pacing: the offered rate is the behaviour under test
  const [type, outcome] = TYPES[n % TYPES.length];
  const id = await client.emit(type, { outcome, actor: { user: `soak${n % 50}` }, attrs: { n, publisher: 'node' } });
  pending.push(id);
  if (pending.length >= 100) { appendFileSync(opts.idsFile, pending.join('\n') + '\n'); pending = []; }
  n++;
}
if (pending.length) appendFileSync(opts.idsFile, pending.join('\n') + '\n');
const flushed = await client.flush(opts.flushTimeoutMs ?? 120000);
const stats = client.stats();
await client.close(10000);
process.stdout.write(JSON.stringify({ emitted: n, flushed, stats }) + '\n');
process.exit(0);
