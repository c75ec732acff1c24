"""The sender thread: the only owner of the DEALER socket (ZeroMQ sockets are not thread-safe).

Data flow, one loop iteration::

    replies (ACK/ERR/PONG) -> timers (ACK timeout, probe, overload pause)
      -> cut batches from the queue -> send directly | append to the spool
      -> replay the spool while the bus answers -> flush bookkeeping -> poll

Wake-ups.  Idle, the thread sleeps until an emitter wakes it (first event) or a
timer fires.  While traffic flows it ticks once per linger period: reads the
ACKs that arrived, sends what queued up; an emitter wakes it early only for a
full batch.  The period is adaptive: ``linger_ms`` for the first event after a
pause, doubled at each tick that cuts a partial batch, up to ``max_linger_ms``,
and back to ``linger_ms`` once a tick finds nothing queued.  A wake-up (thread
switch, poll, ZeroMQ mailbox, GIL hand-offs with the caller's threads) costs
more than encoding a few dozen events, so fewer of them is most of the CPU
saved.  Events are encoded once each by :mod:`.encode`.

States.  ``up``: the broker answers; batches go straight to it, at most
``max_in_flight`` unacknowledged.  ``down``: no ACK within ``ack_timeout``, or
no connection to send on; unacknowledged and new batches go to the disk spool
(:mod:`.spool`) and a PING probes the broker with exponential backoff (0.05 s
up to ``backoff_max``).  A PONG or an ACK brings it back ``up`` and the spool is
replayed in order; a spooled record is deleted only after its ACK.  A probe
left unanswered opens a fresh connection (a frozen peer can hold a TCP
connection open; ZMTP heartbeats catch a vanished one).  ``probing``: right
after start, for up to ``ack_timeout``, batches wait in memory for the first
PONG instead of taking a round trip through the disk just because the TCP
handshake is not done yet; no PONG by then means ``down``.

Order: while the spool holds anything, new batches are appended to it rather
than sent, so replay keeps emission order.  The spool also takes batches when
the queue is half full and the broker cannot take more (``max_in_flight``
reached), so a slow broker moves the backlog to disk instead of dropping.

Re-sends are safe because the broker deduplicates by event id; ``duplicate``
counts the events it already had.  Rejected events (per-event rejections,
ERR ``malformed``, ``unsupported_version``, ``unauthorized``, ``too_large`` of
a single event) are counted and never re-sent.  ``ERR overloaded`` pauses all
sending for ``retry_after_ms`` and re-sends the same batch.  A batch the
broker finds ``too_large`` is split in halves (brokers may be configured with
smaller limits than the SDK's defaults).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import msgpack
import zmq

from . import wire
from .encode import EventEncoder
from .queue import NEVER, EventQueue
from .spool import Spool

log = logging.getLogger("secbus_sdk")

PROBE_BACKOFF_START = 0.05
PROBING, UP, DOWN = "probing", "up", "down"
MAX_POLL = 0.2  # seconds; bounds the cost of any missed wake-up
_EVENTS_KEY = msgpack.packb("events")
_SEQ_KEY = msgpack.packb("seq")
_PING_FRAMES = [wire.MAGIC, wire.PING, wire.pack({})]
_RETRYABLE_ERR = frozenset({wire.OVERLOADED})


@dataclass
class Batch:
    payload: bytes  # msgpack array of events
    count: int
    token: tuple | None = None  # spool record, if it came from the spool
    seq: int = -1
    sent_at: float | None = None
    resend_at: float = 0.0
    replay: bool = False


@dataclass
class Config:
    endpoint: str
    batch_size: int
    linger: float
    max_linger: float
    ack_timeout: float
    max_in_flight: int
    backoff_max: float
    max_batch_bytes: int
    max_event_bytes: int
    curve: tuple | None = field(default=None, repr=False)  # (server_key, public_key, secret_key); never printed


@dataclass
class Counters:
    """Written only by the sender thread; read (racily, as a snapshot) by ``stats()``."""

    sent: int = 0
    acked: int = 0
    duplicate: int = 0
    rejected: int = 0
    spooled: int = 0
    replayed: int = 0
    dropped: int = 0
    connected: bool = False
    last_error: str | None = None
    last_error_at: float = 0.0
    bad_replies: int = 0


class Sender:
    def __init__(self, config: Config, queue: EventQueue, spool: Spool, encoder: EventEncoder):
        self.config = config
        self.queue = queue
        self.spool = spool
        self.encoder = encoder
        self._packer = msgpack.Packer(use_bin_type=True)
        self.counters = Counters()
        # A whole-batch encoding within this budget is sent as it is.  An event in it over
        # max_event_bytes is then refused by the broker alone (ACK ``rejected``, counted).
        self._fast_limit = config.max_batch_bytes - 64
        self._ctx = zmq.Context()
        self._sock: zmq.Socket | None = None
        self._poller: zmq.Poller | None = None
        self._seq = 0
        self._in_flight: dict[int, Batch] = {}
        self._held: list[Batch] = []  # cut, but neither sendable nor spoolable now
        self._state = PROBING
        self._probation_until = 0.0
        self._ping_sent: float | None = None
        self._next_probe = 0.0
        self._backoff = PROBE_BACKOFF_START
        self._pause_until = 0.0
        self._linger_start: float | None = None
        self._linger = config.linger  # the current linger period: grows while traffic flows
        self._flush_requested = 0
        self._flushed = 0
        self._cv = threading.Condition()
        self._stopping = False
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="secbus-sender", daemon=True)
        self._periodic: Callable[[], object] | None = None
        self._periodic_every = 0.0
        self._periodic_due = math.inf

    def set_periodic(self, every: float, job: Callable[[], object]) -> None:
        """Run ``job`` on this thread every ``every`` seconds (the ``perf.sdk.stats`` report).

        Call before :meth:`start`; ``job`` must not block (it may append to the queue)."""
        self._periodic = job
        self._periodic_every = every
        self._periodic_due = time.monotonic() + every

    # ------------------------------------------------------------ public (other threads)

    def start(self) -> None:
        self._thread.start()

    def flush(self, timeout: float | None, give_up_when_down: bool = False) -> bool:
        """Wait until everything queued before this call is acknowledged and the spool is empty.

        ``give_up_when_down``: return ``False`` as soon as the bus counts as down
        (``close()`` uses it, so exit is not delayed by an outage)."""
        with self._cv:
            self._flush_requested += 1
            target = self._flush_requested
        self.queue.wake()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while self._flushed < target:
                if self._stopped.is_set() or (give_up_when_down and self._state == DOWN):
                    return False
                remaining = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
                if remaining <= 0:
                    return False
                self._cv.wait(remaining)
        return True

    @property
    def is_down(self) -> bool:
        return self._state == DOWN

    def stop(self, timeout: float) -> None:
        """Spool everything unacknowledged, close the socket and the spool, end the thread."""
        self._stopping = True
        self.queue.wake()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("secbus sender did not stop within %.1fs; unacknowledged events may be lost", timeout)

    def abandon_after_fork(self) -> None:
        """In a forked child: forget the parent's thread, socket and spool without closing them
        for the parent (pyzmq ignores sockets of another pid; the spool lock stays the parent's)."""
        self.spool.abandon()
        self.queue.close_pipe()

    # ------------------------------------------------------------ thread

    def _run(self) -> None:
        try:
            self._open_socket()
            try:
                self.spool.load()
            except Exception as exc:
                self._error(f"spool: cannot load {self.spool.lane_dir}: {exc}")
            if self.spool.lane < 0:
                self._error(f"spool unavailable: {self.spool.lane_dir}; events wait in memory only", level=logging.WARNING)
            now = time.monotonic()
            self._probation_until = now + self.config.ack_timeout
            self._send_ping(now)
            while not self._stopping:
                try:
                    self._iteration()
                except Exception as exc:  # never die: a dead sender would drop everything
                    log.exception("secbus sender: unexpected error, continuing")
                    self._error(f"sender: {type(exc).__name__}: {exc}")
                    time.sleep(0.05)
            self._shutdown()
        except Exception:
            log.exception("secbus sender: fatal error")
        finally:
            self._stopped.set()
            with self._cv:
                self._cv.notify_all()

    def _open_socket(self) -> None:
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, 1)  # queue only on a live connection: no connection = EAGAIN
        sock.setsockopt(zmq.SNDHWM, self.config.max_in_flight * 2 + 8)
        sock.setsockopt(zmq.RCVHWM, 10000)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, max(100, int(self.config.backoff_max * 1000)))
        # ZMTP heartbeats: a peer that vanished without closing TCP is noticed and redialled.
        sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3000)
        if self.config.curve is not None:
            server_key, public_key, secret_key = self.config.curve
            sock.curve_serverkey = server_key
            sock.curve_publickey = public_key
            sock.curve_secretkey = secret_key
        sock.connect(self.config.endpoint)
        self._sock = sock
        self._poller = zmq.Poller()
        self._poller.register(sock, zmq.POLLIN)
        self._poller.register(self.queue.wake_r, zmq.POLLIN)
        self._pipe_poller = zmq.Poller()
        self._pipe_poller.register(self.queue.wake_r, zmq.POLLIN)

    def _reset_socket(self) -> None:
        """A fresh connection after the broker went silent: no stale queued frames or replies."""
        if self._sock is not None:
            self._sock.close(linger=0)
        self._open_socket()

    def _iteration(self) -> None:
        flush_target = self._flush_requested
        self._receive()
        now = time.monotonic()
        self._timers(now)
        if now >= self._periodic_due:
            self._run_periodic(now)
        self._cut_batches(now, urgent=flush_target > self._flushed)
        self._retry_held(now)
        self._replay(now)
        self._resend_paused(now)
        self.spool.sync_if_due(now)
        self.queue.notify_room()
        self._publish_stats()
        if flush_target > self._flushed and self._drained():
            with self._cv:
                self._flushed = flush_target
                self._cv.notify_all()
        self._wait(now)

    def _run_periodic(self, now: float) -> None:
        self._periodic_due = now + self._periodic_every
        if self._stopping:
            return
        try:
            self._periodic()
        except Exception as exc:
            self._error(f"perf.sdk.stats report failed: {type(exc).__name__}: {exc}")

    def _drained(self) -> bool:
        return not self.queue.items and not self._in_flight and not self._held and self.spool.empty

    # ------------------------------------------------------------ waiting

    def _wait(self, now: float) -> None:
        timeout = MAX_POLL
        q = self.queue
        n = len(q.items)
        cutting = self._can_accept_batches(now)
        # When nothing can be cut (held batches: the spool is full), emitters need not wake
        # us; otherwise a queue half full moves batches to the spool (see _cut_batches).
        stalled = NEVER if self._held else max(1, q.capacity // 2)
        # Ticking: while traffic flows (batches in flight, room for more), wake once per
        # linger period, read the ACKs that came meanwhile and send what queued up, instead
        # of waking for each ACK and for the first event of each batch.  Wake-ups cost far
        # more than the work (about 100 us of CPU each on a small, busy machine).
        tick = (
            self._state == UP
            and self._in_flight
            and cutting
            and self._flush_requested <= self._flushed
            and not self._stopping
        )
        if n == 0 and tick:
            if self._linger_start is None:
                self._linger_start = now
            elif now - self._linger_start >= self._linger:
                tick = False  # a tick found nothing queued: traffic stopped, wait for ACKs and events
        if n == 0 and tick:
            q.wake_at = self.config.batch_size
            timeout = min(timeout, self._linger_start + self._linger - now)
        elif n == 0:
            q.wake_at = 1 if cutting else stalled
            self._linger_start = None
            self._linger = self.config.linger  # idle: the next event waits linger_ms at most
        elif cutting:
            q.wake_at = self.config.batch_size
            if self._linger_start is None:
                self._linger_start = now
            timeout = min(timeout, self._linger_start + self._linger - now)
        else:
            q.wake_at = stalled
        for batch in self._in_flight.values():
            if batch.sent_at is not None:
                timeout = min(timeout, batch.sent_at + self.config.ack_timeout - now)
            else:
                timeout = min(timeout, batch.resend_at - now)
        if self._state != UP:
            if self._ping_sent is None:
                timeout = min(timeout, self._next_probe - now)
            else:
                timeout = min(timeout, self._ping_sent + self.config.ack_timeout - now)
            if self._state == PROBING:
                timeout = min(timeout, self._probation_until - now)
        if self._flush_requested > self._flushed or self._stopping:
            timeout = min(timeout, 0.01)
        timeout = min(timeout, self._periodic_due - now)
        # Lost wake-up guard: emit appended after we looked but before wake_at was set.
        if len(q.items) >= q.wake_at:
            timeout = 0
        timeout = max(0.0, timeout)
        try:
            # round up: pyzmq truncates a float timeout to whole ms, and 0 means "do not wait",
            # so a wait under 1 ms (the end of a linger) would spin the CPU instead of sleeping
            poller = self._pipe_poller if tick else self._poller
            ready = dict(poller.poll(math.ceil(timeout * 1000)))
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EINTR:
                return
            raise
        if q.wake_r in ready:
            q.drain_wake_pipe()

    # ------------------------------------------------------------ replies

    def _receive(self) -> None:
        sock = self._sock
        # ZMQ_EVENTS first (it keeps the GIL): a recv that finds nothing raises zmq.Again, and
        # each recv lets the GIL go, waking a caller thread that waits for it; both cost CPU.
        while sock.get(zmq.EVENTS) & zmq.POLLIN:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                command, body = wire.decode_frames(frames)
            except wire.WireError as exc:
                self.counters.bad_replies += 1
                self._error(f"broker reply: {exc}")
                continue
            if command == wire.ACK:
                self._on_ack(body)
            elif command == wire.ERR:
                self._on_err(body)
            elif command == wire.PONG:
                self._on_pong()

    def _on_ack(self, body: dict) -> None:
        batch = self._in_flight.pop(body.get("seq"), None)
        self._mark_up("an ACK")
        if batch is None:
            return  # a late ACK for a batch already spooled: its replay will be a duplicate
        c = self.counters
        accepted = body.get("accepted", 0)
        duplicate = body.get("duplicate", 0)
        rejected = body.get("rejected") or []
        c.acked += accepted if type(accepted) is int else 0
        c.duplicate += duplicate if type(duplicate) is int else 0
        if rejected:
            c.rejected += len(rejected)
            first = rejected[0]
            message = first[2] if isinstance(first, list) and len(first) > 2 else first
            self._error(f"broker rejected {len(rejected)} event(s), e.g. {message}", level=logging.WARNING)
        if batch.token is not None:
            self.spool.ack(batch.token)

    def _on_err(self, body: dict) -> None:
        code = body.get("code")
        message = body.get("message")
        batch = self._in_flight.get(body.get("seq"))
        self._mark_up("an ERR")
        if batch is None:
            self._error(f"broker ERR {code}: {message}")
            return
        now = time.monotonic()
        if code == wire.OVERLOADED:
            retry_ms = body.get("retry_after_ms")
            wait = retry_ms / 1000 if type(retry_ms) is int and retry_ms >= 0 else 0.1
            batch.sent_at = None
            batch.resend_at = now + wait
            self._pause_until = max(self._pause_until, now + wait)
            self._error(f"broker overloaded: retrying after {wait * 1000:.0f} ms", level=logging.INFO)
            return
        del self._in_flight[batch.seq]
        if code == wire.TOO_LARGE and batch.count > 1:
            self._split(batch)
            return
        self.counters.rejected += batch.count
        self._error(f"broker refused a batch of {batch.count} event(s): ERR {code}: {message}")
        if batch.token is not None:
            self.spool.ack(batch.token)  # never re-send what will be refused again

    def _on_pong(self) -> None:
        self._ping_sent = None
        self._mark_up("a PONG")

    def _mark_up(self, what: str) -> None:
        self._backoff = PROBE_BACKOFF_START
        if self._state != UP:
            was = self._state
            self._state = UP
            self.spool.rewind()
            if was == DOWN or not self.spool.empty:
                log.info("secbus: broker %s answers (%s); replaying %d spooled event(s)",
                         self.config.endpoint, what, self.spool.events)

    def _split(self, batch: Batch) -> None:
        events = msgpack.unpackb(batch.payload, raw=False)
        half = len(events) // 2
        for part in (events[:half], events[half:]):
            self._held.append(Batch(self._array(part), len(part)))
        if batch.token is not None:
            self.spool.ack(batch.token)
        log.info("secbus: broker found a batch of %d events too large; splitting it", batch.count)

    # ------------------------------------------------------------ timers and state

    def _timers(self, now: float) -> None:
        timeout = self.config.ack_timeout
        for batch in self._in_flight.values():
            if batch.sent_at is not None and now - batch.sent_at >= timeout:
                self._go_down(now, f"no ACK from {self.config.endpoint} within ack_timeout={timeout}s")
                break
        if self._ping_sent is not None and now - self._ping_sent >= timeout:
            self._ping_sent = None  # lost: probe again after the backoff
            if self._state == DOWN:
                self._reset_socket()  # a connection that takes a PING but never answers is stuck
        if self._state == PROBING and now >= self._probation_until:
            self._go_down(now, f"no answer from {self.config.endpoint} within ack_timeout={timeout}s")
        if self._state != UP and self._ping_sent is None and now >= self._next_probe:
            self._send_ping(now)

    def _go_down(self, now: float, reason: str) -> None:
        if self._state != DOWN:
            self._state = DOWN
            self._error(f"{reason}; spooling to {self.spool.lane_dir} and probing", level=logging.WARNING)
        batches = sorted(self._in_flight.values(), key=lambda b: b.seq)
        self._in_flight.clear()
        for batch in batches:
            if batch.token is None:
                self._to_spool(batch)
        self.spool.rewind()
        self._reset_socket()
        self._ping_sent = None
        self._next_probe = now + self._backoff

    def _send_ping(self, now: float) -> None:
        try:
            self._sock.send_multipart(_PING_FRAMES, zmq.NOBLOCK)
            self._ping_sent = now
        except zmq.Again:
            self._ping_sent = None  # no connection yet
        if self._state == PROBING:
            self._next_probe = now + PROBE_BACKOFF_START
        else:
            self._next_probe = now + self._backoff
            self._backoff = min(self._backoff * 2, self.config.backoff_max)

    def _error(self, message: str, level: int = logging.ERROR) -> None:
        self.counters.last_error = message
        self.counters.last_error_at = time.monotonic()
        log.log(level, "secbus: %s", message)

    # ------------------------------------------------------------ batches

    def _room(self) -> bool:
        return len(self._in_flight) < self.config.max_in_flight

    def _sendable(self, now: float) -> bool:
        return self._state == UP and self._room() and now >= self._pause_until

    def _can_accept_batches(self, now: float) -> bool:
        if self._held:
            return False
        if self._state == UP and self.spool.empty:
            return self._sendable(now)
        if self._state == PROBING and self.spool.empty:
            return False  # waiting for the first PONG; keep events in memory
        return True  # down, or the spool holds older events: new batches go to the spool

    def _cut_batches(self, now: float, urgent: bool) -> None:
        q = self.queue
        items = q.items
        if not items:
            return
        pressure = len(items) >= max(1, q.capacity // 2) or self._stopping
        full = len(items) >= self.config.batch_size
        lingered = self._linger_start is not None and now - self._linger_start >= self._linger
        if not (urgent or pressure or full or lingered):
            return
        if lingered and not (urgent or pressure or full):
            # Adaptive linger: a partial batch waited a whole period and traffic goes on, so
            # the next period doubles, up to max_linger: fewer, fuller batches (each wake-up
            # and batch costs far more CPU than an event).  A tick that finds the queue empty
            # resets it (see _wait): an event after a pause waits linger_ms at most.
            self._linger = min(self._linger * 2, self.config.max_linger)
        while items:
            if self._can_accept_batches(now):
                pass
            elif pressure and not self._held:
                pass  # the broker cannot take them now: move them to disk rather than drop
            else:
                break
            batch = self._cut_one(items)
            if batch is None:
                continue
            self._dispatch(batch, now)
            if not urgent and not pressure and len(items) < self.config.batch_size:
                break
        self._linger_start = now if items else None

    def _cut_one(self, items) -> Batch | None:
        """Take up to ``batch_size`` events off the queue and encode them as one batch.

        The batch is encoded in one call (:mod:`.encode`); within the byte budget, that is
        the payload.  Otherwise :meth:`_cut_checked` encodes event by event, refuses events
        it cannot encode or over ``max_event_bytes`` and puts what does not fit back in front."""
        n = min(self.config.batch_size, len(items))
        if n == 0:
            return None
        popleft = items.popleft
        chunk = [popleft() for _ in range(n)]
        try:
            payload = self.encoder.batch(chunk)
        except Exception:
            return self._cut_checked(chunk, items)
        if len(payload) <= self._fast_limit:
            return Batch(payload, n)
        return self._cut_checked(chunk, items)

    def _cut_checked(self, chunk: list, items) -> Batch | None:
        budget = self.config.max_batch_bytes - 64  # room for the PUB envelope
        max_event = self.config.max_event_bytes
        encode = self.encoder.one
        packed: list[bytes] = []
        size = 0
        for index, item in enumerate(chunk):
            try:
                data = encode(item)
            except Exception as exc:
                self.counters.rejected += 1
                self._error(f"event {item.id} cannot be encoded ({type(exc).__name__}: {exc}); not sent")
                continue
            if len(data) > max_event:
                self.counters.rejected += 1
                self._error(f"event {item.id} is {len(data)} bytes, over the {max_event}-byte limit; not sent",
                            level=logging.WARNING)
                continue
            if packed and size + len(data) > budget:
                items.extendleft(reversed(chunk[index:]))  # back in front, in order
                break
            packed.append(data)
            size += len(data)
        if not packed:
            return None
        return Batch(self._array_packed(packed), len(packed))

    def _array_packed(self, packed: list[bytes]) -> bytes:
        return self._packer.pack_array_header(len(packed)) + b"".join(packed)

    def _array(self, events: list) -> bytes:
        pack = self._packer.pack
        return self._array_packed([pack(e) for e in events])

    def _dispatch(self, batch: Batch, now: float) -> None:
        if self.spool.empty and not self._held and self._sendable(now):
            if self._send(batch, now):
                return
        self._to_spool(batch)

    def _spool_append(self, batch: Batch) -> bool:
        try:
            return self.spool.append(batch.payload, batch.count)
        except Exception as exc:  # an unexpected disk problem must not lose the batch in hand
            self._error(f"spool: append failed ({type(exc).__name__}: {exc}); keeping the batch in memory")
            return False

    def _to_spool(self, batch: Batch) -> None:
        if self._spool_append(batch):
            self.counters.spooled += batch.count
        else:
            self._held.append(batch)
            if len(self._held) == 1:
                why = (f"spool: {self.spool.write_error}" if self.spool.write_error
                       else f"spool full ({self.spool.bytes} of {self.spool.max_bytes} bytes)")
                self._error(f"{why}; holding {batch.count} event(s) in memory, new events go to the on_full policy",
                            level=logging.WARNING)

    def _retry_held(self, now: float) -> None:
        while self._held:
            batch = self._held[0]
            if self._sendable(now) and self.spool.empty:
                if not self._send(batch, now):
                    return
            elif self._spool_append(batch):
                self.counters.spooled += batch.count
            elif self._sendable(now):
                # Spool full while the broker answers: send out of order rather than stall.
                if not self._send(batch, now):
                    return
            else:
                return
            self._held.pop(0)

    def _replay(self, now: float) -> None:
        if self._state != UP or self.spool.empty:
            return
        while self._sendable(now):
            record = self.spool.next_record()
            if record is None:
                return
            batch = Batch(record.payload, record.events, token=record.token, replay=True)
            if not self._send(batch, now):
                self.spool.rewind()
                return
            self.counters.replayed += batch.count

    def _resend_paused(self, now: float) -> None:
        if now < self._pause_until:
            return
        for batch in list(self._in_flight.values()):
            if batch.sent_at is None and now >= batch.resend_at:
                del self._in_flight[batch.seq]
                if not self._send(batch, now, keep_seq=True):
                    if batch.token is None:
                        self._to_spool(batch)
                    return

    def _send(self, batch: Batch, now: float, keep_seq: bool = False) -> bool:
        """Send one PUB; on no connection go down and return False (the caller keeps the batch)."""
        if not keep_seq:
            self._seq += 1
            batch.seq = self._seq
        body = b"\x82" + _EVENTS_KEY + batch.payload + _SEQ_KEY + self._packer.pack(batch.seq)
        try:
            self._sock.send_multipart([wire.MAGIC, wire.PUB, body], zmq.NOBLOCK)
        except zmq.Again:
            self._go_down(now, f"no connection to {self.config.endpoint}")
            return False
        batch.sent_at = now
        self._in_flight[batch.seq] = batch
        self.counters.sent += batch.count
        return True

    def _publish_stats(self) -> None:
        self.counters.connected = self._state == UP

    # ------------------------------------------------------------ shutdown

    def _shutdown(self) -> None:
        """Spool what is left: the queue, unacknowledged batches, held batches."""
        self._receive()
        items = self.queue.items
        while items:
            batch = self._cut_one(items)
            if batch is not None:
                self._spool_or_drop(batch)
        for batch in sorted(self._in_flight.values(), key=lambda b: b.seq):
            if batch.token is None:
                self._spool_or_drop(batch)
        self._in_flight.clear()
        for batch in self._held:
            self._spool_or_drop(batch)
        self._held.clear()
        self.counters.connected = False
        self.spool.close()
        if self._sock is not None:
            self._sock.close(linger=0)
        self._ctx.term()
        # The wake pipe stays open: an emit racing with close may still write to it,
        # and a closed descriptor number could by then belong to another file.

    def _spool_or_drop(self, batch: Batch) -> None:
        if self._spool_append(batch):
            self.counters.spooled += batch.count
        else:
            self.counters.dropped += batch.count
            self._error(f"spool full at close: {batch.count} event(s) lost")

