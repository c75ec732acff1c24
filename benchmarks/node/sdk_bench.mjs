// Node side of the SDK benchmarks: Ed25519 verification with node:crypto
// alone and with one emit() per verification (interleaved repetitions in one
// process, medians), and emit() per-call p50/p99 with the bus up or down.
//
// Usage: node sdk_bench.mjs '<json options>'  -> prints one JSON object.
// Options: {mode: "verify"|"overhead"|"emit", iterations, repeats, calls, burst,
//           endpoint, spoolDir, sdkPath}
import { generateKeyPairSync, sign, verify, randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';

const opts = JSON.parse(process.argv[2] || '{}');
const now = () => process.hrtime.bigint();

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function pct(sorted, q) {
  if (!sorted.length) return null;
  const rank = Math.max(1, Math.ceil((q / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}

const { publicKey, privateKey } = generateKeyPairSync('ed25519');
const message = randomBytes(256);
const signature = sign(null, message, privateKey);

function verifyLoop(n, onEach) {
  const t0 = now();
  for (let i = 0; i < n; i++) {
    if (!verify(null, message, publicKey, signature)) throw new Error('signature did not verify');
    if (onEach) onEach(i);
  }
  return Number(now() - t0) / n; // ns per iteration
}

async function loadClient() {
  const mod = await import(pathToFileURL(opts.sdkPath).href);
  return mod.Client;
}

async function drain(client, ms) {
  if (typeof client.flush === 'function') await client.flush(ms);
}

// Bus down: wait (untimed) until the sender has moved the queue to the spool,
// so no timed emit() meets a full queue (a cheap "dropped" call).
async function settleToSpool(client, ms) {
  const deadline = Date.now() + ms;
  while (client.stats().queued > 0) {
    if (Date.now() > deadline) throw new Error(`the SDK did not spool its queue within ${ms} ms: ${JSON.stringify(client.stats())}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function main() {
  const n = opts.iterations ?? 20000;
  const repeats = opts.repeats ?? 5;
  if (opts.mode === 'verify') {
    verifyLoop(Math.min(n, 2000));
    const runs = [];
    for (let r = 0; r < repeats; r++) runs.push(verifyLoop(n));
    return { verify_ns: { median: median(runs), runs } };
  }
  const Client = await loadClient();
  const client = new Client({ endpoint: opts.endpoint, service: 'bench-node', spoolDir: opts.spoolDir });
  const emitOne = (i) => client.emit('authn.signature.verify', {
    outcome: 'success', actor: { user: `user${i % 1000}`, key_id: 'k-1' },
    resource: 'doc/invoices/2026-11', attrs: { algorithm: 'ed25519', message_bytes: 256 }, durationUs: 61,
  });
  try {
    if (opts.mode === 'overhead') {
      // Alternating blocks: alone / with one emit each, order flipped every pair;
      // per-pair ratios of wall time (the caller's loop) and of process CPU time
      // (every thread, over the block and the flush that sends it).
      const block = opts.block ?? 500;
      const cpuNs = () => { const u = process.cpuUsage(); return (u.user + u.system) * 1000; };
      const alone = () => {
        const w0 = now(), c0 = cpuNs();
        verifyLoop(block);
        return [Number(now() - w0), cpuNs() - c0];
      };
      const withEmit = async () => {
        const w0 = now(), c0 = cpuNs();
        verifyLoop(block, emitOne);
        const w1 = now();
        await drain(client, 30000);
        return [Number(w1 - w0), cpuNs() - c0];
      };
      alone(); await withEmit();
      const pairs = Math.max(1, Math.floor(n / block));
      const out = { wall_ratio: [], cpu_ratio: [], alone_wall_ns: [], emit_wall_ns: [], alone_cpu_ns: [], emit_cpu_ns: [] };
      for (let i = 0; i < pairs; i++) {
        let a, e;
        if (i % 2) { e = await withEmit(); a = alone(); } else { a = alone(); e = await withEmit(); }
        out.wall_ratio.push(e[0] / a[0]);
        out.cpu_ratio.push(a[1] ? e[1] / a[1] : null);
        out.alone_wall_ns.push(a[0] / block); out.emit_wall_ns.push(e[0] / block);
        out.alone_cpu_ns.push(a[1] / block); out.emit_cpu_ns.push(e[1] / block);
      }
      out.stats = client.stats();
      return out;
    }
    if (opts.mode === 'emit') {
      const calls = opts.calls ?? 50000;
      const burst = opts.burst ?? 2000;
      const samples = new Float64Array(calls);
      let k = 0;
      for (let i = 0; i < Math.min(calls, 5000); i++) emitOne(i); // warm-up
      if (opts.busUp) await drain(client, 10000);
      else await settleToSpool(client, 30000);
      while (k < calls) {
        const end = Math.min(calls, k + burst);
        for (; k < end; k++) {
          const t0 = now();
          emitOne(k);
          samples[k] = Number(now() - t0);
        }
        if (opts.busUp) await drain(client, 10000);
        else await settleToSpool(client, 30000);
      }
      // Clock cost of one hrtime pair, reported beside the figures.
      const clk = [];
      for (let i = 0; i < 20000; i++) { const a = now(); clk.push(Number(now() - a)); }
      clk.sort((a, b) => a - b);
      const sorted = Array.from(samples).sort((a, b) => a - b);
      return { p50_ns: pct(sorted, 50), p90_ns: pct(sorted, 90), p99_ns: pct(sorted, 99), max_ns: sorted[sorted.length - 1],
               mean_ns: sorted.reduce((a, b) => a + b, 0) / sorted.length, calls, clock_pair_ns: pct(clk, 50),
               stats: client.stats() };
    }
    throw new Error(`unknown mode ${opts.mode}`);
  } finally {
    if (typeof client.close === 'function') await client.close(opts.busUp === false ? 2000 : 10000);
  }
}

main().then((out) => { process.stdout.write(JSON.stringify(out) + '\n'); process.exit(0); },
  (err) => { process.stdout.write(JSON.stringify({ error: String(err && err.stack || err) }) + '\n'); process.exit(1); });
