// Types for @secbus/sdk. Every public name of src/index.js is declared here.

/** The SDK version, e.g. "0.1.0". */
export declare const VERSION: string;
/** `source.sdk` of every event: "@secbus/sdk/<VERSION>". */
export declare const SDK_NAME: string;

export type Outcome = 'success' | 'failure' | 'error' | 'unknown';
export type Severity = 'info' | 'low' | 'medium' | 'high' | 'critical';
export type OnFull = 'drop' | 'block' | 'fallback';

export declare const OUTCOMES: readonly Outcome[];
export declare const SEVERITIES: readonly Severity[];

/** A scalar allowed in attrs (and unknown fields). Integers beyond 2^53 are BigInt. */
export type Scalar = string | number | bigint | boolean | null;

/** Who acted. Known fields are strings; others must match [a-z][a-z0-9_]* and hold a scalar. */
export interface Actor {
  user?: string;
  key_id?: string;
  ip?: string;
  session?: string;
  [field: string]: Scalar | undefined;
}

/** Up to 64 keys matching [A-Za-z_][A-Za-z0-9_.:-]{0,127}, each a scalar or a list of up to 64 scalars. */
export type Attrs = Record<string, Scalar | Scalar[] | undefined>;

/** The fields of `emit()`; all optional. */
export interface EmitFields {
  /** Default "success". */
  outcome?: Outcome;
  actor?: Actor;
  /** What was checked, e.g. "invoice/42" (a string of at most 4 KiB). */
  resource?: string;
  /** A short code, e.g. "bad_signature". */
  reason?: string;
  attrs?: Attrs;
  severity?: Severity;
  /** How long the check took, in microseconds (a non-negative integer). */
  durationUs?: number | bigint;
  /** W3C trace context ("00-<trace-id>-<parent-id>-<flags>"); a valid one wins over the active OpenTelemetry span. */
  traceparent?: string | null;
}

/** Options of `verify()`: the emit fields plus how to classify the result. */
export interface VerifyOptions extends Omit<EmitFields, 'outcome' | 'durationUs'> {
  /** Error classes that mean "the check said no" (outcome failure) rather than "the check broke" (error). */
  failOn?: Function | Function[];
  /** Record a falsy return value as failure with reason "falsy_result". Default false. */
  falsyIsFailure?: boolean;
}

/** Handed to the function under `verify()`. */
export interface Verification {
  /** Record the check as failed with this reason (default "failed"); `fn` still returns or throws as it likes. */
  fail(reason?: string): void;
  /** The reason given to fail(), or null. */
  readonly failed: string | null;
}

/** A fallback sink: a JSONL file path, or a function receiving the event object (ts as BigInt). */
export type FallbackSink = string | ((event: SecbusEvent) => void);

export interface Logger {
  debug(message: string): void;
  warn(message: string): void;
}

export interface ClientOptions<P extends OnFull = OnFull> {
  /** Your service name: every event's source.service. Required. */
  service: string;
  /** The broker's ingest address. Default "tcp://127.0.0.1:7878". */
  endpoint?: string;
  /** Where the disk spool lives. Default $XDG_CACHE_HOME/secbus/spool/<service> (else ~/.cache/...). */
  spoolDir?: string;
  /** Bound of the spool on disk. Default 268435456 (256 MiB); at least 65536. */
  spoolMaxBytes?: number;
  /** Bound of the in-memory queue, in events. Default 10000. */
  queueSize?: number;
  /** Events per PUB, at most 1000. Default 256. */
  batchSize?: number;
  /** How long a partial batch waits for more events, ms: the most a lone event waits. Default 5. */
  lingerMs?: number;
  /** Adaptive linger: while events keep coming the wait doubles per batch up to this, ms; back to lingerMs after a quiet period. Default 20. */
  maxLingerMs?: number;
  /** No ACK (or PONG) within this many ms: the bus is unreachable. Default 2000. */
  ackTimeout?: number;
  /** Batches sent and not yet acknowledged. Default 8. */
  maxInFlight?: number;
  /** Cap of the backoff between PING probes while the bus is unreachable, ms (starts at 50). Default 2000. */
  backoffMax?: number;
  /** What emit() does when the queue is full. Default "drop". */
  onFull?: P;
  /** With onFull "fallback": a JSONL file path or a function. Default null. */
  fallback?: FallbackSink | null;
  /** With onFull "block": how long emit() may wait, ms; null waits for ever. Default null. */
  blockTimeout?: number | null;
  /** At beforeExit or close() without argument: how long to wait for ACKs, ms. Default 2000. */
  exitTimeout?: number;
  /** Every this many ms the client sends its counters as one perf.sdk.stats event (a heartbeat); 0 or null: off. Default 60000. */
  statsIntervalMs?: number | null;
  /** source.host of every event. Default os.hostname(). */
  host?: string;
  /** The broker's CURVE public key (Z85, 40 characters); turns CURVE on. Default null. */
  serverKey?: string | null;
  /** This client's CURVE key pair (Z85); without them an ephemeral pair is generated. Default null. */
  publicKey?: string | null;
  secretKey?: string | null;
  /** Where warnings and debug lines go. Default: util.debuglog("secbus") plus process.emitWarning (at most one per 10 s) for warnings. */
  logger?: Logger;
}

/** Counters and state; see README.md "stats()". */
export interface Stats {
  queued: number;
  sent: number;
  acked: number;
  duplicate: number;
  rejected: number;
  spooled: number;
  replayed: number;
  dropped: number;
  fallback: number;
  connected: boolean;
  lastError: string | null;
  invalidTraceparent: number;
  invalidInput: number;
  inFlight: number;
  held: number;
  spoolBytes: number;
  spoolEvents: number;
  spoolTorn: number;
  spoolDir: string | null;
}

/** An event as built by the SDK (absent optional fields are undefined). */
export interface SecbusEvent {
  actor?: Actor;
  attrs?: Attrs;
  duration_us?: number | bigint;
  id: string;
  outcome: Outcome;
  reason?: string;
  resource?: string;
  severity?: Severity;
  source: { host?: string; pid?: number; platform: string; sdk: string; service: string; [field: string]: Scalar | undefined };
  span_id: string;
  trace_id: string;
  /** ns since the Unix epoch. */
  ts: bigint | number;
  type: string;
  v: 1;
  [field: string]: unknown;
}

export declare class Client<P extends OnFull = 'drop'> {
  constructor(options: ClientOptions<P>);
  readonly options: Readonly<Required<Omit<ClientOptions<P>, 'spoolDir' | 'host' | 'logger'>>> & ClientOptions<P>;
  /**
   * Queue one event; returns its id (UUIDv7), or with onFull "block" a Promise of it.
   * Throws a WireError (code "invalid", `.field`) for a bad argument; never because of the bus.
   */
  emit(type: string, fields?: EmitFields): P extends 'block' ? Promise<string> : string;
  /**
   * Time `fn` and record success, failure or error with durationUs; return (or rethrow) exactly what fn does.
   * Async functions are recorded when their promise settles.
   */
  verify<T>(type: string, fn: (v: Verification) => T, options?: VerifyOptions): T;
  /** Send what is queued and wait for its ACK (and an empty spool); false if `ms` (default 5000) passed first. */
  flush(ms?: number): Promise<boolean>;
  /** Flush within `ms` (default exitTimeout; no wait if the bus is down), spool the rest, stop. Idempotent. */
  close(ms?: number): Promise<void>;
  /** The synchronous part of close(): spool what is unacknowledged now and stop. */
  closeSync(): void;
  stats(): Stats;
}

/** The default spool directory for a service. */
export declare function defaultSpoolDir(service: string): string;

/** A protocol or validation error: `code` ("invalid", "malformed", "too_large", ...), the `field`, a message naming field and value. */
export declare class WireError extends Error {
  constructor(code: string, message: string, field?: string | null);
  readonly code: string;
  readonly field: string | null;
  asList(): [string, string];
}

export type LimitName =
  | 'max_event_bytes' | 'max_batch_events' | 'max_batch_bytes' | 'max_string_bytes' | 'max_attrs' | 'max_list_items'
  | 'maxEventBytes' | 'maxBatchEvents' | 'maxBatchBytes' | 'maxStringBytes' | 'maxAttrs' | 'maxListItems';

/** Size limits of PROTOCOL.md section 5. */
export declare class Limits {
  constructor(values?: Partial<Record<LimitName, number>>);
  readonly maxEventBytes: number;
  readonly maxBatchEvents: number;
  readonly maxBatchBytes: number;
  readonly maxStringBytes: number;
  readonly maxAttrs: number;
  readonly maxListItems: number;
  readonly maxFrameBytes: number;
  withOverrides(overrides: Partial<Record<LimitName, number>>): Limits;
}
export declare const DEFAULT_LIMITS: Limits;

/** Canonical msgpack bytes of a value (PROTOCOL.md section 4). */
export declare function pack(value: unknown): Buffer;
/** Decode one msgpack value (safe integers as number, larger as BigInt); throws WireError. */
export declare function unpack(data: Uint8Array, limits?: Limits): unknown;
/** Check an event; returns it in canonical key order or throws WireError. */
export declare function validateEvent(event: unknown, limits?: Limits): SecbusEvent;
/** A UUIDv7 string for the given Unix time in ms (default now). */
export declare function newEventId(ms?: number): string;
/** 32 random lowercase hex characters, never all zeros. */
export declare function newTraceId(): string;
/** 16 random lowercase hex characters, never all zeros. */
export declare function newSpanId(): string;
/** Parse a W3C traceparent header; null when invalid. */
export declare function parseTraceparent(value: unknown): { traceId: string; spanId: string; flags: number } | null;
/** Format a W3C traceparent header ("00-<traceId>-<spanId>-01"). */
export declare function formatTraceparent(traceId: string, spanId: string, sampled?: boolean): string;
