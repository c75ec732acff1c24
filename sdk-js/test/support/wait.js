/** Polling helpers for tests: every wait has a deadline, never a bare sleep. */

/**
 * Poll `predicate` (sync or async) until it returns something truthy and
 * return that value; throw naming `message` when `timeoutMs` passes.
 */
export async function waitUntil(predicate, timeoutMs = 10000, message = 'condition', intervalMs = 10) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await predicate();
    if (last) return last;
    if (Date.now() > deadline) {
      const text = typeof message === 'function' ? message() : message;
      throw new Error(`timed out after ${timeoutMs} ms waiting for: ${text} (last value: ${String(last)})`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
