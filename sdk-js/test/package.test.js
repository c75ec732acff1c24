// The package surface: what index.js exports is what index.d.ts declares,
// and importing it starts nothing (no timers, sockets or listeners).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import * as sdk from '../src/index.js';

const dts = readFileSync(new URL('../index.d.ts', import.meta.url), 'utf8');

test('the package exports its version', () => {
  assert.match(sdk.VERSION, /^\d+\.\d+\.\d+$/);
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  assert.equal(sdk.VERSION, pkg.version);
  assert.equal(sdk.SDK_NAME, `${pkg.name}/${pkg.version}`);
});

test('index.d.ts declares every public name and nothing that is not exported', () => {
  const declared = new Set([...dts.matchAll(/^export declare (?:const|function|class) (\w+)/gm)].map((m) => m[1]));
  assert.deepEqual([...declared].sort(), Object.keys(sdk).sort());
});

test('importing the package has no side effects: a script that only imports it exits at once', () => {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `import('${new URL('../src/index.js', import.meta.url).href}').then(() => console.log(process.listenerCount('beforeExit'), process.listenerCount('exit')))`], { timeout: 10000, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), '0 0');
});

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

/** The `names` in the first column of the table under `## heading` in README.md. */
function readmeTableNames(heading) {
  const section = readme.split(`\n## ${heading}\n`)[1].split('\n## ')[0];
  const names = section.split('\n').filter((line) => line.startsWith('| `'))
    .flatMap((line) => [...line.split('|')[1].matchAll(/`(\w+)`/g)].map((m) => m[1]));
  return names.sort();
}

/** The member names of `export interface name` in index.d.ts. */
function declaredMembers(name) {
  const body = dts.split(new RegExp(`export interface ${name}(?:<[^{]*>)? {`))[1].split('\n}')[0];
  return [...body.matchAll(/^ {2}(\w+)\??:/gm)].map((m) => m[1]).sort();
}

test('README and index.d.ts name every client option and every stats() key', async () => {
  // the client's own list, from its error for an unknown option
  let known;
  assert.throws(() => new sdk.Client({ service: 'docs', notAnOption: 1 }), (err) => {
    known = err.message.split('unknown option; known: ')[1].split(', ').sort();
    return true;
  });
  assert.deepEqual(readmeTableNames('Options'), known);
  assert.deepEqual(declaredMembers('ClientOptions'), known);

  const spoolDir = mkdtempSync(join(tmpdir(), 'secbus-docs-'));
  const client = new sdk.Client({ service: 'docs', endpoint: 'tcp://127.0.0.1:9', spoolDir, statsIntervalMs: 0 });
  try {
    const keys = Object.keys(client.stats()).sort();
    assert.deepEqual(readmeTableNames('stats()'), keys);
    assert.deepEqual(declaredMembers('Stats'), keys);
  } finally {
    await client.close(0);
    rmSync(spoolDir, { recursive: true, force: true });
  }
});
