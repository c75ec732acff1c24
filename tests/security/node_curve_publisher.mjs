// Publish with @secbus/sdk over CURVE, keys from the files `secbus keys generate` writes,
// then print {"ids", "flushed", "stats"} as one JSON line.
//
//   node node_curve_publisher.mjs ENDPOINT SERVER_KEY_FILE SECRET_KEY_FILE SPOOL_DIR
import { Client } from '../../sdk-js/src/index.js';

const [endpoint, serverKey, secretKey, spoolDir] = process.argv.slice(2);
const bus = new Client({ service: 'payments', endpoint, spoolDir, serverKey, secretKey, ackTimeout: 1000 });
const ids = [
  bus.emit('security.signature.verify', { outcome: 'failure', attrs: { tenant: 'acme' } }),
  bus.emit('authz.check', { outcome: 'success' }),
  bus.emit('config.change', { outcome: 'success' }),  // outside this key's types: rejected
];
const flushed = await bus.flush(10000);
await bus.close(1000);
process.stdout.write(`${JSON.stringify({ ids, flushed, stats: bus.stats() })}\n`);
