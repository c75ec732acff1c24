// The package surface: what index.js exports is what index.d.ts declares,
// and importing it starts nothing (no timers, sockets or listeners).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
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
