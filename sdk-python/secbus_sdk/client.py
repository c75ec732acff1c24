"""``Client``: the public surface of the Python SDK.

``emit()`` is on the caller's hottest path (inside signature, key and token
checks), so it does the least that keeps the promises: validate the caller's
arguments with cheap checks (a set lookup for a type already seen, a frozenset
for the outcome, a type test per attr), take a timestamp and a UUIDv7
(:mod:`.ids`), look up the trace context (:mod:`.tracecontext`), append one
:class:`~.encode.WireEvent` to the queue (:mod:`.queue`) and return the event id.
Random trace ids, msgpack, batching, the socket and the spool all
happen in the sender thread (:mod:`.sender`).

Process life: an ``atexit`` hook closes the client (flush with the
``exit_timeout`` deadline, spool the rest).  After ``os.fork()`` the child gets
a fresh queue, sender thread, socket and spool lane (``os.register_at_fork``);
the parent's queued events stay the parent's and are never sent twice.
"""

from __future__ import annotations

import atexit
import functools
import logging
import math
import os
import socket
import threading
import time
import weakref
from typing import Any, Callable, Mapping

import msgspec

from . import __version__, event as _event, wire
from .arguments import actor_copy as _actor, check as _check, invalid as _invalid
from .arguments import non_negative as _non_negative, positive as _positive, positive_int as _positive_int
from .curve import curve_keys as _curve_keys
from .encode import EventEncoder, WireEvent as _WireEvent, fill_trace_ids
from .fallback import FallbackSink
from .ids import fast_event_id
from . import selfstats as _selfstats
from .queue import POLICIES, EventQueue
from .sender import Config, Sender
from .spool import NoSpool, Spool, SpoolError
from .tracecontext import otel_context as _otel_context, parse_traceparent, span_ids_in
from .verify import Verification, verified_decorator

log = logging.getLogger("secbus_sdk")

DEFAULT_ENDPOINT = "tcp://127.0.0.1:7878"
DEFAULT_SPOOL_MAX_BYTES = 256 * 1024 * 1024
_OUTCOMES = frozenset(_event.OUTCOMES)
_SEVERITIES = frozenset(_event.SEVERITIES)
_MAX_INT64 = 2**63 - 1
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
_SHORT = wire.DEFAULT_LIMITS.max_string_bytes // 4  # chars that cannot exceed the byte limit
_MAX_ATTRS = wire.DEFAULT_LIMITS.max_attrs
_CACHE_MAX = 4096
_time_ns = time.time_ns
_isfinite = math.isfinite
_NO_TRACE = (None, None)

# Objects a forked child must not close for its parent; kept alive so their
# finalizers never run in the child.
_ABANDONED: list = []


def default_spool_dir(service: str) -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in service) or "default"
    return os.path.join(base, "secbus", "spool", safe)


class Client:
    """Publishes verification events to a secbus broker without slowing the caller.

    Every option is described, with its default, in ``sdk-python/README.md``.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        service: str | None = None,
        *,
        spool_dir: str | os.PathLike | None = None,
        spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
        queue_size: int = 10000,
        batch_size: int = 256,
        linger_ms: float = 5,
        max_linger_ms: float = 20,
        ack_timeout: float = 2.0,
        max_in_flight: int = 8,
        backoff_max: float = 2.0,
        on_full: str = "drop",
        fallback: str | os.PathLike | Callable[[dict], Any] | None = None,
        block_timeout: float | None = None,
        exit_timeout: float = 2.0,
        host: str | None = None,
        server_key: str | bytes | None = None,
        public_key: str | bytes | None = None,
        secret_key: str | bytes | None = None,
        stats_interval: float | None = _selfstats.DEFAULT_INTERVAL,
    ):
        limits = wire.DEFAULT_LIMITS
        if type(endpoint) is not str or "://" not in endpoint:
            raise ValueError(f"endpoint: expected an address such as 'tcp://127.0.0.1:7878', got {wire.show(endpoint)}")
        if type(service) is not str or not service or len(service.encode()) > limits.max_string_bytes:
            raise ValueError(f"service: expected a non-empty string (your service's name), got {wire.show(service)}")
        _positive_int("queue_size", queue_size)
        _positive_int("batch_size", batch_size)
        _positive_int("max_in_flight", max_in_flight)
        if batch_size > limits.max_batch_events:
            raise ValueError(f"batch_size: at most {limits.max_batch_events} (the protocol's batch limit), got {batch_size}")
        _positive_int("spool_max_bytes", spool_max_bytes)
        if spool_max_bytes < 64 * 1024:
            raise ValueError(f"spool_max_bytes: must be at least 65536 (64 KiB), got {spool_max_bytes}")
        _non_negative("linger_ms", linger_ms)
        _non_negative("max_linger_ms", max_linger_ms)
        _positive("ack_timeout", ack_timeout)
        _positive("backoff_max", backoff_max)
        _non_negative("exit_timeout", exit_timeout)
        if block_timeout is not None:
            _non_negative("block_timeout", block_timeout)
        if stats_interval is not None:
            _non_negative("stats_interval", stats_interval)
        if on_full not in POLICIES:
            raise ValueError(f"on_full: expected one of {', '.join(POLICIES)}, got {wire.show(on_full)}")
        sink = None
        if on_full == "fallback":
            if fallback is None:
                raise ValueError("fallback: on_full='fallback' needs a fallback (a JSONL file path or a callable)")
            sink = FallbackSink(fallback)
        elif fallback is not None:
            sink = FallbackSink(fallback)
        if host is None:
            host = socket.gethostname()
        if type(host) is not str:
            raise ValueError(f"host: expected a string, got {wire.show(host)}")
        curve = _curve_keys(server_key, public_key, secret_key)

        self.endpoint = endpoint
        self.service = service
        self.spool_dir = os.fspath(spool_dir) if spool_dir is not None else default_spool_dir(service)
        self._spool_max_bytes = spool_max_bytes
        self._queue_size = queue_size
        self._on_full = on_full
        self._block_timeout = block_timeout
        self._fallback = sink
        self._exit_timeout = exit_timeout
        self._host = host
        self._stats_interval = float(stats_interval) if stats_interval else 0.0
        self._config = Config(
            endpoint=endpoint,
            batch_size=batch_size,
            linger=linger_ms / 1000,
            max_linger=max(linger_ms, max_linger_ms) / 1000,
            ack_timeout=ack_timeout,
            max_in_flight=max_in_flight,
            backoff_max=backoff_max,
            max_batch_bytes=min(limits.max_batch_bytes, max(4096, spool_max_bytes // 4)),
            max_event_bytes=limits.max_event_bytes,
            curve=curve,
        )
        self._types: set = set()
        self._attr_keys: set = set()
        self._stat_lock = threading.Lock()
        self._invalid_traceparent = 0
        self._invalid_input = 0
        self._closed = False
        self._pid = os.getpid()
        self._start()

        ref = weakref.ref(self)
        self._atexit = functools.partial(_close_at_exit, ref)
        atexit.register(self._atexit)
        os.register_at_fork(after_in_child=functools.partial(_reinit_in_child, ref))

    def _start(self) -> None:
        self._source = {
            "host": self._host,
            "pid": os.getpid(),
            "platform": "python",
            "sdk": f"secbus-sdk/{__version__}",
            "service": self.service,
        }
        try:
            spool = Spool(self.spool_dir, self._spool_max_bytes)
        except SpoolError as exc:
            # Not fatal (the Node SDK behaves the same): the app keeps running, events wait in
            # memory only, and last_error says why.
            spool = NoSpool(self.spool_dir, str(exc), self._spool_max_bytes)
        encoder = EventEncoder(self._source)
        self._wire_source = encoder.source
        self._q = EventQueue(self._queue_size, self._on_full, self._block_timeout, self._fallback, self._build_event)
        self._sender = Sender(self._config, self._q, spool, encoder)
        self._last_report: dict | None = None
        if self._stats_interval > 0:
            self._sender.set_periodic(self._stats_interval, self._report_stats)
        self._sender.start()

    # ------------------------------------------------------------------ emit

    def emit(
        self,
        type: str,
        outcome: str = "success",
        *,
        actor: Mapping[str, Any] | None = None,
        resource: str | None = None,
        reason: str | None = None,
        attrs: Mapping[str, Any] | None = None,
        severity: str | None = None,
        duration_us: int | None = None,
        traceparent: str | None = None,
    ) -> str:
        """Queue one event and return its id; ``ValueError`` names a bad argument.

        Never raises because of the bus: a full queue follows ``on_full``.

        One frame, cheap checks first: ``emit()`` runs right after the caller's own
        verification has evicted the interpreter from the CPU caches, where every
        Python call and bytecode costs several times its warm price (benchmarks/FINDINGS.md 11)."""
        try:
            try:
                if type not in self._types:
                    self._check_type(type)
                if outcome not in _OUTCOMES:
                    _invalid("outcome", outcome)
                if severity is not None and severity not in _SEVERITIES:
                    _invalid("severity", severity)
            except TypeError:  # unhashable: a list or a dict where a string belongs
                self._slow_check(type=type, outcome=outcome, severity=severity)
                raise AssertionError("unreachable")  # pragma: no cover
            if resource is not None and (resource.__class__ is not str or len(resource) > _SHORT):
                _check("resource", resource)
            if reason is not None and (reason.__class__ is not str or len(reason) > _SHORT):
                _check("reason", reason)
            if duration_us is not None and (duration_us.__class__ is not int or not 0 <= duration_us <= _MAX_INT64):
                _check("duration_us", duration_us)
            if actor is not None:
                actor = _actor(actor)
            if attrs is not None:
                attrs = self._attrs(attrs)
        except ValueError:
            with self._stat_lock:
                self._invalid_input += 1
            raise
        if traceparent is None or (ids := parse_traceparent(traceparent)) is None:
            if traceparent is not None:
                self._bad_traceparent(traceparent)
            context = _otel_context()  # empty unless OpenTelemetry is in use: skip the span lookup
            ids = (span_ids_in(context) if context else None) or _NO_TRACE
        ts = _time_ns()
        eid = fast_event_id(ts)
        item = _WireEvent(id=eid, outcome=outcome, source=self._wire_source, ts=ts, type=type, v=1, actor=actor,
                          attrs=attrs, duration_us=duration_us, reason=reason, resource=resource, severity=severity,
                          trace_id=ids[0], span_id=ids[1])
        q = self._q
        items = q.items
        if len(items) >= q.capacity:
            q.put_full(item)
            return eid
        items.append(item)
        if len(items) >= q.wake_at:
            q.wake()
        return eid

    def _check_fields_only(self, event_type: Any, fields: Mapping[str, Any]) -> None:
        """Validate what ``emit`` would, without emitting (for ``verify``)."""
        self._check_type(event_type)
        for name, value in fields.items():
            if value is not None and name != "traceparent":
                _check(name, value)

    def _check_type(self, value: Any) -> None:
        _check("type", value)
        if len(self._types) < _CACHE_MAX:
            self._types.add(value)

    def _slow_check(self, **fields: Any) -> None:
        for name, value in fields.items():
            if value is not None or name in ("type", "outcome"):
                _check(name, value)

    def _attrs(self, attrs: Any) -> dict:
        if attrs.__class__ is not dict or len(attrs) > _MAX_ATTRS:
            _check("attrs", attrs)
            attrs = dict(attrs)
        if not self._attr_keys.issuperset(attrs):  # keys seen before: one C call, no pattern
            self._learn_attr_keys(attrs)
        canonical = False
        for value in attrs.values():
            kind = value.__class__
            if kind is str:
                if len(value) > _SHORT:
                    _check("attrs", attrs)
            elif kind is int:
                if not _INT_MIN <= value <= _INT_MAX:
                    _check("attrs", attrs)
            elif kind is bool or value is None:
                pass
            elif kind is float:
                if not _isfinite(value):
                    _check("attrs", attrs)
                canonical = True
            else:
                _check("attrs", attrs)  # lists and anything unusual: the full rules
                canonical = True
        # A copy (the caller may reuse its dict) whose values are canonical: the sender
        # then only sorts the keys (secbus_sdk.encode).  Floats and lists are rare.
        return wire.canonical(attrs) if canonical else attrs.copy()

    def _learn_attr_keys(self, attrs: dict) -> None:
        """Check attr keys not seen before against the key pattern; remember good ones (bounded)."""
        keys = self._attr_keys
        for key in attrs:
            if key not in keys:
                if key.__class__ is not str or not _event.ATTR_KEY_RE.fullmatch(key):
                    _check("attrs", attrs)
                if len(keys) < _CACHE_MAX:
                    keys.add(key)

    def _bad_traceparent(self, value: Any) -> None:
        with self._stat_lock:
            self._invalid_traceparent += 1
        log.debug("secbus: invalid traceparent %s ignored; the event starts a new trace", wire.show(value))

    def _build_event(self, ev: _WireEvent) -> dict:
        """The event map in canonical key order (for the fallback sink): the Struct's fields,
        declared in that order, without the unset ones."""
        fill_trace_ids([ev])
        out = {name: value for name, value in msgspec.structs.asdict(ev).items() if value is not None}
        out["source"] = self._source  # the dict, not the packed bytes the wire carries
        for name in ("actor", "attrs"):
            if name in out:
                out[name] = _canonical_flat(out[name])
        return out

    # ------------------------------------------------------------------ verify

    def verify(self, type: str, *, fail_on: tuple = (), **fields: Any) -> Verification:
        """Context manager (``with`` and ``async with``) that times a check and emits its outcome."""
        return Verification(self, type, fail_on, fields)

    def verified(self, type: str, *, falsy_is_failure: bool = False, fail_on: tuple = (), **fields: Any):
        """Decorator for plain and ``async`` functions: :meth:`verify` around each call."""
        return verified_decorator(self, type, falsy_is_failure, fail_on, fields)

    # ------------------------------------------------------------------ life

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Send what is queued now and wait for its ACK (and an empty spool); ``False`` on timeout."""
        if self._closed:
            return False
        return self._sender.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Flush with a deadline (none if the bus is known down), spool the rest, stop. Idempotent."""
        if self._closed:
            return
        timeout = self._exit_timeout if timeout is None else timeout
        if self._stats_interval > 0:
            try:
                self._report_stats(final=True)
            except Exception:  # a report must never stop close()
                log.exception("secbus: final perf.sdk.stats report failed")
        self._closed = True
        try:
            if not self._sender.is_down and timeout > 0:
                self._sender.flush(timeout, give_up_when_down=True)
        finally:
            self._q.close()
            self._sender.stop(max(5.0, timeout))
            leftover = len(self._q.items)  # emitted by another thread while close() ran
            if leftover:
                self._q.items.clear()
                self._q.count_drop("emitted while the client was closing", leftover)
            if self._fallback is not None:
                self._fallback.close()
            try:
                atexit.unregister(self._atexit)
            except Exception:
                pass

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def stats(self) -> dict:
        """Counters and state; the keys are listed in the README."""
        c = self._sender.counters
        q = self._q
        spool = self._sender.spool
        return {
            "queued": len(q.items),
            "sent": c.sent,
            "acked": c.acked,
            "duplicate": c.duplicate,
            "rejected": c.rejected,
            "spooled": c.spooled,
            "replayed": c.replayed,
            "dropped": q.dropped + c.dropped,
            "fallback": q.fallback_written,
            "connected": c.connected,
            "last_error": q.last_error if q.last_error_at > c.last_error_at else c.last_error,
            "invalid_traceparent": self._invalid_traceparent,
            "invalid_input": self._invalid_input,
            "in_flight": len(self._sender._in_flight),
            "held": sum(b.count for b in list(self._sender._held)),
            "spool_bytes": spool.bytes,
            "spool_events": spool.events,
            "spool_torn": spool.torn,
            "bad_replies": c.bad_replies,
        }

    def _report_stats(self, final: bool = False) -> bool:
        """Queue one ``perf.sdk.stats`` event (:mod:`.selfstats`); ``False`` if none was queued.

        Periodic (sender thread): always, as a heartbeat.  ``final`` (close): only when the
        counters changed since the last report.  Never subject to ``on_full``."""
        snapshot = self.stats()
        attrs = _selfstats.report_attrs(snapshot)
        with self._stat_lock:
            last = self._last_report
            if final and (attrs == last if last is not None else not _selfstats.carried_anything(snapshot)):
                return False
            q = self._q
            if len(q.items) >= q.capacity:
                return False  # skipped, not dropped: the report must not inflate what it measures
            self._last_report = attrs
        outcome, severity = _selfstats.outcome_and_severity(attrs)
        ts = _time_ns()
        q.items.append(_WireEvent(id=fast_event_id(ts), outcome=outcome, source=self._wire_source, ts=ts,
                                  type=_selfstats.EVENT_TYPE, v=1, attrs=attrs, severity=severity))
        if final:
            q.wake()
        return True

    def _after_fork_in_child(self) -> None:
        old_sender, old_queue = self._sender, self._q
        _ABANDONED.append((old_sender, old_queue, old_sender._ctx, old_sender._sock))
        self._stat_lock = threading.Lock()
        if self._fallback is not None:
            self._fallback.reset_after_fork()
        old_sender.abandon_after_fork()
        if self._closed:
            return
        try:
            self._start()
        except Exception as exc:
            log.error("secbus: cannot restart the client in the forked child: %s", exc)
            self._closed = True
            return
        self._pid = os.getpid()


def _close_at_exit(ref: "weakref.ref[Client]") -> None:
    client = ref()
    if client is not None and client._pid == os.getpid():
        try:
            client.close()
        except Exception:
            log.exception("secbus: close at exit failed")


def _reinit_in_child(ref: "weakref.ref[Client]") -> None:
    client = ref()
    if client is not None:
        client._after_fork_in_child()


# ---------------------------------------------------------------------- validation helpers


def _canonical_flat(d: dict) -> dict:
    """Canonical form of a validated actor or attrs map: sorted keys, integral floats as ints.

    The common case (string and int values) skips :func:`wire.canonical`'s recursion."""
    if len(d) > 1:
        d = {k: d[k] for k in sorted(d)}
    for v in d.values():
        kind = v.__class__
        if kind is float or kind is list:
            return wire.canonical(d)
    return d
