/** Run test/fixtures/emitter.mjs with a plan; collect its JSON lines. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const fixture = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/emitter.mjs');

const live = new Set();

/** SIGKILL every emitter still running (test cleanup, so a failed test never leaves one behind). */
export function killEmitters() {
  for (const proc of live) proc.kill('SIGKILL');
}

export function runEmitter(plan) {
  // plan.fileSizeLimit (KiB): the soft RLIMIT_FSIZE, set by the shell before it becomes node
  const [file, args] = plan.fileSizeLimit
    ? ['/bin/sh', ['-c', `ulimit -S -f ${Math.floor(plan.fileSizeLimit * 2)} && exec "$0" "$1"`, process.execPath, fixture]]
    : [process.execPath, [fixture]];
  const proc = spawn(file, args, {
    env: { ...process.env, SECBUS_TEST_PLAN: JSON.stringify(plan) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  const child = { proc, lines: [], stderr: '', startedAt: Date.now() };
  let buf = '';
  proc.stdout.on('data', (chunk) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      child.lines.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
    }
  });
  proc.stderr.on('data', (chunk) => {
    child.stderr += chunk;
  });
  child.exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal, ms: Date.now() - child.startedAt })));
  child.step = (name) => child.lines.find((l) => l.step === name);
  return child;
}
