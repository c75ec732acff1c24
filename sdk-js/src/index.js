/**
 * @secbus/sdk: publish verification events (signature checks, key and token
 * validation, logins, permission checks) to a secbus broker from Node.js.
 * One class, `Client`; the codec and trace helpers are exported for tools
 * and tests. Importing this module has no side effects.
 */
export { Client, VERSION, SDK_NAME, defaultSpoolDir } from './client.js';
export { WireError, Limits, DEFAULT_LIMITS, pack, unpack } from './wire.js';
export { validateEvent, newEventId, newTraceId, newSpanId, OUTCOMES, SEVERITIES } from './event.js';
export { parseTraceparent, formatTraceparent } from './tracecontext.js';
