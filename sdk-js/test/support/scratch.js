// What a test file creates and must undo at the end: temp dirs, clients, brokers.
// Each file makes one Scratch and calls cleanup() from its own after() hook,
// so it still decides what runs first (e.g. killing child emitters).
import { rmSync } from 'node:fs';
import { Client } from '../../src/index.js';
import { startBroker, tempDir } from './broker.js';

export class Scratch {
  #undo = [];

  /** Run `fn` at cleanup, after everything registered later (last in, first out). */
  defer(fn) {
    this.#undo.push(fn);
  }

  /** A temp dir removed at cleanup. */
  dir() {
    const d = tempDir();
    this.defer(() => rmSync(d, { recursive: true, force: true }));
    return d;
  }

  /** A client with its own spool dir, closed at cleanup. */
  client(options) {
    const c = new Client({ spoolDir: this.dir(), ...options });
    this.defer(() => c.close(0));
    return c;
  }

  /** A real broker (support/broker.js), disposed at cleanup. */
  async broker(opts) {
    const b = await startBroker(opts);
    this.defer(() => b.dispose());
    return b;
  }

  async cleanup() {
    for (const fn of this.#undo.reverse()) await fn();
    this.#undo = [];
  }
}
