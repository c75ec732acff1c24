// The Node half of the cross-language test: a front end that handles one
// request. It starts the trace (or continues an incoming one), records its
// own checks with @secbus/sdk, calls the Python back end with a W3C
// `traceparent` header, records the outcome, flushes, and prints
// {"trace_id", "ids"} as one JSON line.
//
//   node node_frontend.mjs ENDPOINT BACKEND_URL SPOOL_DIR
import { Client, formatTraceparent, newSpanId, newTraceId } from '../../sdk-js/src/index.js';

const [endpoint, backend, spoolDir] = process.argv.slice(2);
const bus = new Client({ service: 'web-frontend', endpoint, spoolDir });

// A new request: a new trace, and the span of this service's work in it.
const traceId = newTraceId();
const traceparent = formatTraceparent(traceId, newSpanId());
const ids = [];

ids.push(bus.emit('authn.login', { outcome: 'success', actor: { user: 'alice', ip: '203.0.113.7' }, traceparent }));
const claims = bus.verify('authn.token.verify', () => ({ sub: 'alice' }), { traceparent, resource: 'session' });

// The back end continues the same trace: the header carries it.
const res = await fetch(backend, { method: 'POST', headers: { traceparent, 'content-type': 'application/json' }, body: JSON.stringify({ invoice: 42, user: claims.sub }) });
const answer = await res.json();
ids.push(...answer.ids);

ids.push(bus.emit('authz.check', { outcome: answer.ok ? 'success' : 'failure', resource: 'invoice/42', traceparent }));
const flushed = await bus.flush(10000);
await bus.close();
process.stdout.write(`${JSON.stringify({ trace_id: traceId, ids, flushed, stats: bus.stats() })}\n`);
