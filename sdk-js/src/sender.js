/**
 * The sender: the one owner of the DEALER socket. It turns the in-memory
 * queue into PUB batches, keeps every batch until the broker's ACK, and
 * moves what it cannot deliver to the disk spool, replaying it in order when
 * the broker answers again.
 *
 * Shape taken from OpenTelemetry's BatchProcessor: `emit()` only appends and
 * maybe wakes the sender; encoding and I/O happen here, off the caller's
 * path. Beyond it: nothing is dropped on an export failure; a batch leaves
 * memory only when it is acknowledged, rejected by the broker or written to
 * the spool.
 *
 * States:
 *   direct     broker answering, spool empty: send from the queue, up to
 *              `maxInFlight` batches in flight.
 *   replaying  broker answering, spool not empty: new events are appended to
 *              the spool behind the old ones (order is kept) and the spool
 *              is sent segment by segment; a segment is deleted once all its
 *              events are acknowledged.
 *   down       no connection (a send finds no peer) or no ACK within
 *              `ackTimeoutMs`: unacknowledged and new batches go to the
 *              spool; a PING probe runs with exponential backoff (50 ms up
 *              to `backoffMaxMs`); its PONG switches to replaying.
 * `ERR overloaded` pauses sending for `retry_after_ms` and re-sends the same
 * events; `ERR too_large` splits the batch; other ERRs and per-event
 * rejections are counted and never re-sent. Re-sent events keep their ids,
 * so the broker stores each once.
 *
 * Process life: every timer is unref'd and a receive is pending only while
 * something is in flight (with a 250 ms receive timeout), so an idle client
 * never keeps Node alive.
 */

import { Dealer, curveKeyPair } from 'zeromq';
import { DEFAULT_LIMITS, MAGIC, OVERLOADED, TOO_LARGE, decodeFrames, EventBatch, packPubBody } from './wire.js';

const PUB_FRAME = Buffer.from('PUB');
const PING_FRAME = Buffer.from('PING');
const EMPTY_MAP = Buffer.from([0x80]);
const BACKOFF_START_MS = 50;
const RECEIVE_TIMEOUT_MS = 250;
const PUB_ENVELOPE_BYTES = 32; // map header, "events", array header, "seq" and a uint64
const SPOOL_SLICE = 4; // batches spooled per turn of the event loop (4 x 256 events, a few ms)

function unref(timer) {
  timer?.unref?.();
  return timer;
}

export class Sender {
  /**
   * @param {object} o
   * @param {string} o.endpoint
   * @param {import('./queue.js').RingQueue} o.queue
   * @param {import('./spool.js').Spool | null} o.spool
   * @param {object} o.stats shared counters (client.js)
   * @param {number} o.batchSize
   * @param {number} o.ackTimeoutMs
   * @param {number} o.maxInFlight
   * @param {number} o.backoffMaxMs
   * @param {{serverKey?: string, publicKey?: string, secretKey?: string}} [o.curve]
   * @param {import('./wire.js').Limits} [o.limits]
   * @param {{debug: Function, warn: Function}} o.log
   * @param {() => void} o.onProgress called after anything moved (room in the queue, ACKs)
   * @param {() => boolean} [o.mayCut] whether a batch may be cut from the queue now (the
   *   client's linger: a partial batch waits for its period to end); default always
   *
   * A batch is `{events: Buffer[], order, seq, segment, timer}`: `segment` is
   * null for a batch cut from the queue, or the replay it belongs to (the
   * object, so a batch of an abandoned replay can never count for a new one).
   */
  constructor(o) {
    this.endpoint = o.endpoint;
    this.queue = o.queue;
    this.spool = o.spool;
    this.stats = o.stats;
    this.batchSize = o.batchSize;
    this.ackTimeoutMs = o.ackTimeoutMs;
    this.maxInFlight = o.maxInFlight;
    this.backoffMaxMs = o.backoffMaxMs;
    this.limits = o.limits ?? DEFAULT_LIMITS;
    this.log = o.log;
    this.onProgress = o.onProgress;
    this.mayCut = o.mayCut ?? (() => true);
    this.graceMs = Math.min(this.ackTimeoutMs, 1000);
    // A batch is cut at the protocol's 1 MiB, or a quarter of the spool so a few always fit in it.
    this.maxBatchBytes = Math.min(this.limits.maxBatchBytes, Math.floor((this.spool?.maxBytes ?? Infinity) / 4));

    this.mode = 'direct'; // direct | replaying | down
    this.seq = 0;
    this.order = 0;
    this.inFlight = new Map(); // seq -> batch
    this.retry = []; // batches of the queue waiting to be (re-)sent, by order
    this.replay = null; // {name, pending: batch[], outstanding}
    this.pausedUntil = 0;
    this.pauseTimer = null;
    this.probeTimer = null;
    this.probeDeadline = null;
    this.probePending = false;
    this.backoffMs = BACKOFF_START_MS;
    this.running = false;
    this.again = false;
    this.yieldNext = false;
    this.receiving = false;
    this.stopped = false;
    this.sendChain = Promise.resolve();
    this.encoder = new EventBatch(); // reused: events are encoded into it, then taken as one buffer
    this.spoolFullWarned = false;

    this.socket = new Dealer({
      immediate: true, // a send with no connected broker fails at once (EAGAIN) instead of queueing blindly
      sendTimeout: 0,
      receiveTimeout: RECEIVE_TIMEOUT_MS,
      linger: 0, // unacknowledged data is spooled by us, never left in ZeroMQ at close
      maxMessageSize: this.limits.maxFrameBytes,
      reconnectInterval: 100,
      reconnectMaxInterval: Math.max(100, this.backoffMaxMs),
    });
    const curve = o.curve ?? {};
    if (curve?.serverKey) {
      let { publicKey, secretKey } = curve;
      if (!publicKey || !secretKey) ({ publicKey, secretKey } = curveKeyPair());
      this.socket.curveServerKey = curve.serverKey;
      this.socket.curvePublicKey = publicKey;
      this.socket.curveSecretKey = secretKey;
    }
    this.startedAt = Date.now();
    this.socket.connect(this.endpoint);
    if (this.spool !== null && !this.spool.isEmpty) this.mode = 'replaying';
  }

  get connected() {
    return this.stats.connected;
  }

  /** Is everything acknowledged (queue, retries, in flight and spool empty)? */
  /** Events cut into batches that neither the broker nor the spool has taken yet (kept in memory). */
  get held() {
    let n = 0;
    for (const b of this.retry) n += b.events.length;
    return n;
  }

  get idle() {
    return this.queue.size === 0 && this.retry.length === 0 && this.inFlight.size === 0
      && this.replay === null && (this.spool === null || this.spool.isEmpty);
  }

  /** Wake the sender (coalesced). */
  kick() {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    this.loop().catch((err) => {
      this.stats.lastError = `sender: ${err.message}`;
      this.log.warn(`sender failed: ${err.stack ?? err}`);
    }).finally(() => {
      this.running = false;
      this.onProgress();
    });
  }

  async loop() {
    do {
      this.again = false;
      await this.step();
      this.onProgress();
      if (this.again && this.yieldNext) {
        // A bounded slice of spooling is done: let the application's I/O run before the next.
        this.yieldNext = false;
        await new Promise((resolve) => setImmediate(resolve));
      }
    } while (this.again && !this.stopped);
  }

  async step() {
    if (this.stopped) return;
    if (this.mode === 'down') {
      this.toSpoolSlice();
      return;
    }
    if (Date.now() < this.pausedUntil) {
      this.wakeAtPauseEnd();
      return;
    }
    if (this.mode === 'replaying') {
      this.toSpoolSlice();
      await this.replayStep();
      return;
    }
    while (this.inFlight.size < this.maxInFlight && !this.stopped) {
      const batch = this.retry.shift() ?? (this.mayCut() ? this.takeBatch() : null);
      if (batch === null) break;
      if (!(await this.sendBatch(batch))) break;
    }
  }

  /**
   * Up to `batchSize` events from the queue, encoded; events larger than
   * `maxEventBytes` are rejected here (counted), never sent.
   */
  takeBatch() {
    const batch = this.encoder;
    let bytes = PUB_ENVELOPE_BYTES;
    while (batch.count < this.batchSize && this.queue.size > 0) {
      let size;
      try {
        size = batch.add(this.queue.peek());
      } catch (err) { // emit() validated it, so this is a bug; still, never stall the queue on it
        this.queue.shift();
        this.stats.rejected++;
        this.stats.lastError = `event cannot be encoded: ${err.message}; not sent`;
        this.log.warn(this.stats.lastError);
        continue;
      }
      if (size > this.limits.maxEventBytes) {
        batch.drop(size);
        this.queue.shift();
        this.stats.rejected++;
        this.stats.lastError = `event: ${size} bytes exceeds the limit of ${this.limits.maxEventBytes}; not sent`;
        this.log.warn(this.stats.lastError);
        continue;
      }
      if (batch.count > 0 && bytes + size > this.maxBatchBytes) {
        batch.drop(size);
        break;
      }
      this.queue.shift();
      batch.keep();
      bytes += size;
    }
    return batch.count === 0 ? null : { events: batch.take(), order: ++this.order, seq: 0, segment: null, timer: null };
  }

  /** Serialise sends: a zeromq.js socket allows one send in progress. */
  send(frames) {
    const next = this.sendChain.then(() => this.socket.send(frames));
    this.sendChain = next.catch(() => {});
    return next;
  }

  async sendBatch(batch) {
    batch.seq = ++this.seq;
    const body = packPubBody(batch.seq, batch.events);
    this.inFlight.set(batch.seq, batch);
    try {
      await this.send([MAGIC, PUB_FRAME, body]);
    } catch (err) {
      this.inFlight.delete(batch.seq);
      this.putBack(batch);
      if (this.stopped) return false;
      if (err.code === 'EAGAIN' && Date.now() - this.startedAt < this.graceMs) {
        // Still connecting right after start: wait a little rather than spool.
        unref(setTimeout(() => this.kick(), 10));
        return false;
      }
      this.goDown(err.code === 'EAGAIN' ? `no connection to the broker at ${this.endpoint}` : `send failed: ${err.message}`);
      return false;
    }
    const n = batch.events.length;
    this.stats.sent += n;
    if (batch.segment !== null) this.stats.replayed += n;
    if (this.inFlight.get(batch.seq) === batch) {
      batch.timer = unref(setTimeout(() => this.onAckTimeout(batch), this.ackTimeoutMs));
      this.ensureReceiving();
    }
    return true;
  }

  /** A batch that was not delivered goes back where it came from, in order. */
  putBack(batch) {
    if (batch.timer !== null) clearTimeout(batch.timer);
    batch.timer = null;
    // A replay batch goes back only into its own replay; an abandoned replay's events are still in the spool.
    const list = batch.segment === null ? this.retry : (batch.segment === this.replay ? this.replay.pending : undefined);
    if (list === undefined) return;
    list.push(batch);
    list.sort((a, b) => a.order - b.order);
  }

  ensureReceiving() {
    if (this.receiving || this.stopped) return;
    this.receiving = true;
    this.receiveLoop();
  }

  /** Read replies while one is awaited; the flag drops in the same tick the loop ends, so a send right after restarts it. */
  async receiveLoop() {
    try {
      while (!this.stopped && (this.inFlight.size > 0 || this.probePending)) {
        let frames;
        try {
          frames = await this.socket.receive();
        } catch (err) {
          if (err.code === 'EAGAIN') continue; // the receive timeout: check whether anything is still awaited
          return;
        }
        this.handleReply(frames);
      }
    } finally {
      this.receiving = false;
    }
  }

  handleReply(frames) {
    let command;
    let body;
    try {
      [command, body] = decodeFrames(frames, this.limits);
    } catch (err) {
      this.stats.lastError = `bad reply from the broker: ${err.message}`;
      this.log.warn(this.stats.lastError);
      return;
    }
    if (command === 'PONG') this.onPong();
    else if (command === 'ACK') this.onAck(body);
    else if (command === 'ERR') this.onErr(body);
  }

  onAck(body) {
    const batch = this.inFlight.get(body.seq);
    if (batch === undefined) return; // late ACK of a batch already spooled: the broker deduplicates the replay
    this.inFlight.delete(body.seq);
    clearTimeout(batch.timer);
    this.stats.connected = true;
    this.stats.acked += Number(body.accepted) || 0;
    this.stats.duplicate += Number(body.duplicate) || 0;
    const rejected = Array.isArray(body.rejected) ? body.rejected : [];
    this.stats.rejected += rejected.length;
    if (rejected.length > 0) {
      const [, code, message] = rejected[0];
      this.stats.lastError = `broker rejected ${rejected.length} event(s); first: ${code}: ${message}`;
      // The log names the code and the field only: the message may quote the event's value.
      const field = String(message ?? '').split(':', 1)[0];
      this.log.warn(`broker rejected ${rejected.length} event(s); first: ${code} (field ${field}); see stats().lastError`);
    }
    this.batchDone(batch);
  }

  onErr(body) {
    const batch = body.seq === null || body.seq === undefined ? undefined : this.inFlight.get(body.seq);
    this.stats.lastError = `broker error ${body.code}: ${body.message}`;
    if (batch === undefined) {
      this.log.warn(`${this.stats.lastError} (for no batch in flight)`);
      return;
    }
    this.inFlight.delete(body.seq);
    clearTimeout(batch.timer);
    batch.timer = null;
    this.stats.connected = true;
    if (body.code === OVERLOADED) {
      const wait = Math.max(1, Number(body.retry_after_ms) || 100);
      this.pausedUntil = Math.max(this.pausedUntil, Date.now() + wait);
      this.putBack(batch);
      this.wakeAtPauseEnd();
      this.log.debug(`broker overloaded; retrying in ${wait} ms`);
      return;
    }
    if (body.code === TOO_LARGE && batch.events.length > 1) {
      const half = Math.ceil(batch.events.length / 2);
      const second = { ...batch, events: batch.events.slice(half), order: batch.order + 0.5, timer: null };
      batch.events = batch.events.slice(0, half);
      this.putBack(batch);
      this.putBack(second);
      if (batch.segment !== null && batch.segment === this.replay) this.replay.outstanding++;
      this.kick();
      return;
    }
    this.stats.rejected += batch.events.length;
    this.log.warn(`${this.stats.lastError}; ${batch.events.length} event(s) not re-sent`);
    this.batchDone(batch);
  }

  /** Kick the sender when the `overloaded` pause ends (timers may fire a little early: re-arm then). */
  wakeAtPauseEnd() {
    if (this.pauseTimer !== null || this.stopped) return;
    this.pauseTimer = unref(setTimeout(() => {
      this.pauseTimer = null;
      this.kick();
    }, Math.max(1, this.pausedUntil - Date.now() + 1)));
  }

  /** A batch is settled (acknowledged or rejected): release its spool segment if it was the last. */
  batchDone(batch) {
    if (batch.segment !== null && batch.segment === this.replay) {
      this.replay.outstanding--;
      if (this.replay.outstanding === 0 && this.replay.pending.length === 0) {
        this.spool.remove(this.replay.name);
        this.replay = null;
        if (this.spool.isEmpty && this.mode === 'replaying') this.mode = 'direct';
      }
    }
    this.kick();
  }

  onAckTimeout(batch) {
    if (this.inFlight.get(batch.seq) !== batch) return;
    this.goDown(`no ACK within ${this.ackTimeoutMs} ms`);
  }

  /** The broker is unreachable: spool what is unacknowledged, start probing. */
  goDown(reason) {
    if (this.stopped) return;
    const wasDown = this.mode === 'down';
    this.mode = 'down';
    this.stats.connected = false;
    this.stats.lastError = reason;
    const batches = [...this.inFlight.values()];
    this.inFlight.clear();
    for (const batch of batches.sort((a, b) => a.order - b.order)) {
      if (batch.segment === null) this.putBack(batch);
      else if (batch.timer !== null) clearTimeout(batch.timer);
    }
    this.replay = null; // its events are still in the spool; replayed from the segment start later
    if (!wasDown) this.log.warn(`broker unreachable (${reason}); spooling to ${this.spool?.dir ?? '(no spool)'}`);
    this.scheduleProbe();
    this.kick();
  }

  scheduleProbe() {
    if (this.probeTimer !== null || this.probePending || this.stopped) return;
    const wait = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.backoffMaxMs);
    this.probeTimer = unref(setTimeout(() => {
      this.probeTimer = null;
      this.probe();
    }, wait));
  }

  async probe() {
    if (this.mode !== 'down' || this.stopped) return;
    try {
      await this.send([MAGIC, PING_FRAME, EMPTY_MAP]);
    } catch {
      this.scheduleProbe();
      return;
    }
    this.probePending = true;
    this.ensureReceiving();
    this.probeDeadline = unref(setTimeout(() => {
      this.probeDeadline = null;
      this.probePending = false;
      this.scheduleProbe();
    }, this.ackTimeoutMs));
  }

  onPong() {
    this.probePending = false;
    if (this.probeDeadline !== null) clearTimeout(this.probeDeadline);
    this.probeDeadline = null;
    if (this.mode !== 'down') return;
    this.stats.connected = true;
    this.backoffMs = BACKOFF_START_MS;
    this.mode = this.spool !== null && !this.spool.isEmpty ? 'replaying' : 'direct';
    this.log.debug(`broker answers again; ${this.mode}`);
    this.kick();
  }

  /**
   * Spool at most SPOOL_SLICE batches, then come back after the event loop
   * had its turn: encoding and writing a full queue (10 000 events) at once
   * would stall the application for tens of milliseconds.
   */
  toSpoolSlice() {
    if (!this.toSpool(SPOOL_SLICE)) {
      this.again = true;
      this.yieldNext = true;
    }
  }

  /**
   * Move retried batches and the queue into the spool, in order, while it has
   * room; returns false when it stopped at `maxBatches` with more to do.
   */
  toSpool(maxBatches = Infinity) {
    if (this.spool === null) return true;
    for (let n = 0; ; n++) {
      if (n >= maxBatches) return this.retry.length === 0 && this.queue.size === 0;
      const batch = this.retry[0] ?? this.takeBatch();
      if (batch === null || batch === undefined) return true;
      if (this.retry[0] === batch) this.retry.shift();
      const written = this.spool.appendSome(batch.events);
      this.stats.spooled += written;
      if (written < batch.events.length) {
        batch.events = batch.events.slice(written);
        this.retry.unshift(batch);
        if (!this.spoolFullWarned) {
          this.spoolFullWarned = true;
          this.stats.lastError = this.spool.writeError
            ? `spool: ${this.spool.writeError}; events wait in memory`
            : `spool full (${this.spool.bytes} of ${this.spool.maxBytes} bytes); events wait in memory`;
          this.log.warn(this.stats.lastError);
        }
        return true; // full: nothing more to do until an ACK frees room
      }
      this.spoolFullWarned = false;
    }
  }

  /** Send the oldest spool segment in batches; the next one once it is acknowledged. */
  async replayStep() {
    if (this.replay === null) {
      if (this.spool.isEmpty) {
        this.mode = 'direct';
        this.again = true;
        return;
      }
      const seg = this.spool.readOldest();
      if (seg === null) return;
      if (seg.events.length === 0) {
        this.spool.remove(seg.name);
        this.again = true;
        return;
      }
      const replay = { name: seg.name, pending: [], outstanding: 0 };
      let current = null;
      for (const encoded of seg.events) {
        if (current === null || current.events.length >= this.batchSize
          || current.bytes + encoded.length > this.maxBatchBytes) {
          current = { events: [], bytes: PUB_ENVELOPE_BYTES, order: ++this.order, seq: 0, segment: replay, timer: null };
          replay.pending.push(current);
        }
        current.events.push(encoded);
        current.bytes += encoded.length;
      }
      replay.outstanding = replay.pending.length;
      this.replay = replay;
    }
    while (this.replay !== null && this.replay.pending.length > 0 && this.inFlight.size < this.maxInFlight && !this.stopped) {
      const batch = this.replay.pending.shift();
      if (!(await this.sendBatch(batch))) return;
    }
  }

  /**
   * Synchronously write everything not acknowledged (in flight, retries,
   * queue) to the spool; what does not fit is counted as dropped.
   * Used by close() and the process `exit` hook.
   */
  spoolRest() {
    const batches = [...this.inFlight.values()].filter((b) => b.segment === null);
    for (const b of this.inFlight.values()) clearTimeout(b.timer);
    this.inFlight.clear();
    for (const b of batches) this.putBack(b);
    if (this.spool !== null) this.toSpool();
    let lost = 0;
    for (const b of this.retry) lost += b.events.length;
    lost += this.queue.size;
    this.retry = [];
    this.queue.drain();
    if (lost > 0) {
      this.stats.dropped += lost;
      this.stats.lastError = `${lost} event(s) dropped at close: ${this.spool === null ? 'no spool' : 'spool full'}`;
      this.log.warn(this.stats.lastError);
    }
    this.replay = null;
  }

  /** Stop timers and close the socket; the spool is closed by the client. */
  stop() {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of [this.pauseTimer, this.probeTimer, this.probeDeadline]) if (t !== null) clearTimeout(t);
    for (const b of this.inFlight.values()) clearTimeout(b.timer);
    try {
      this.socket.close();
    } catch { /* already closed */ }
  }
}
