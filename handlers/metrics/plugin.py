"""The ``metrics`` handler: OpenTelemetry instruments, Prometheus exposition at ``/metrics``.

Instruments go through ``opentelemetry-api``; the SDK's ``MeterProvider``
(a private one: the process-global provider stays the application's) feeds
a ``PrometheusMetricReader``, and ``GET /metrics`` on the broker's HTTP port
(added with ``app.add_route``, as any plugin could) renders it with
``prometheus_client``.  Two costs are kept off the per-event path (they were
most of the handler's CPU): the verification-duration histogram is
aggregated by the handler (``histogram.py``: OpenTelemetry's arithmetic and
exposition, ~0.3 us a value instead of ~7 us per ``record()``), and closed
traces are counted per flag in a dict that is added to the OpenTelemetry
counter at each scrape, so every scrape still sees every trace.

What is measured (Prometheus names; docs/handlers.md has the table):

* from ``on_events``: ``secbus_events_total{type,outcome,platform,tenant}``,
  ``secbus_verification_duration_seconds{type,outcome}`` (from ``duration_us``),
  SDK figures from ``perf.sdk.stats`` events (below);
* from ``on_trace``: ``secbus_traces_closed_total{flag}`` (once per flag;
  ``flag="none"`` for a trace without flags);
* from ``on_alert``: ``secbus_alerts_total{rule,severity}``;
* read from ``app.stats()`` at each scrape: ``secbus_ingest_rejects_total{code}``,
  ``secbus_handler_lag{handler}``, ``secbus_handler_failures_total{handler}``,
  ``secbus_handler_skipped_total{handler}``, ``secbus_handler_running{handler}``,
  ``secbus_open_traces``, ``secbus_correlator_lag``, ``secbus_ingest_backlog``,
  ``secbus_ingest_max_backlog``, ``secbus_log_size_bytes``,
  ``secbus_log_disk_free_bytes``, ``secbus_log_disk_size_bytes``,
  ``secbus_consumers_restarts_total``, ``secbus_log_write_failures_total{operation}``,
  ``secbus_log_writes_failing{operation}``: what an alerting rule on the broker's
  health needs (docs/operations.md, "Monitoring").

SDK spool and drop figures: an SDK reports them by publishing an event of
type ``perf.sdk.stats`` whose ``attrs`` carry its ``stats()`` numbers
(``queued``, ``spooled``, ``dropped``, ``fallback``, ``replayed``,
``rejected``: cumulative since the client started, except ``queued`` and
``spooled`` which are current).  The latest report of each client
(``source.service``, ``source.host``, ``source.pid``) is exposed as
``secbus_sdk_<name>{service,platform,instance}`` gauges, until it is older
than ``sdk_report_ttl`` (a client that exited stops being shown).

Every label goes through the cardinality guard (``max_label_values`` per
label and instrument, default 100; the rest fold into ``other``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable

import msgspec
from aiohttp import web
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from secbus import hookimpl

from .._settings import Configured, Settings
from .guard import CardinalityGuard
from .histogram import Histogram

SCOPE = "secbus.handlers.metrics"   # the OpenTelemetry meter's name (otel_scope_name)
SDK_STATS_TYPE = "perf.sdk.stats"
SDK_FIGURES = ("queued", "spooled", "dropped", "fallback", "replayed", "rejected")
# Verification checks take microseconds (a cached token) to seconds (a remote key server).
DURATION_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _TraceFlags(msgspec.Struct):
    """What on_trace counts of a stored trace (its other fields, events included, are skipped)."""

    flags: list = []


_trace_flags = msgspec.msgpack.Decoder(_TraceFlags).decode


class MetricsHandler(Configured):
    def __init__(self) -> None:
        self.registry: CollectorRegistry | None = None
        self.provider: MeterProvider | None = None
        self._sdk: dict[tuple, tuple[int, dict]] = {}  # client labels -> (ts of its latest report, figures)
        self._sdk_lock = threading.Lock()
        self._stats = None
        self._stats_cache: tuple[float, dict] | None = None
        self._pending_traces: dict[str, int] = {}   # flag -> closed traces not yet added
        self._pending_lock = threading.Lock()

    def configure(self, name, settings, data_dir) -> None:
        s = Settings(name, settings)
        self.guard = CardinalityGuard(s.integer("max_label_values", 100, minimum=1))
        self.path = s.string("path", "/metrics")
        self.sdk_report_ttl_ns = int(s.number("sdk_report_ttl", 600.0, minimum=1.0) * 1e9)
        s.reject_unknown()

    @hookimpl
    def startup(self, app) -> None:
        self.configure(app.name, app.settings, app.data_dir)
        self._stats = app.stats
        # The reader registers with a registry of its own; /metrics renders
        # self.registry, whose one collector adds the handler's histogram.
        self._otel_registry = CollectorRegistry()
        reader = PrometheusMetricReader(disable_target_info=True, registry=self._otel_registry)
        self.registry = CollectorRegistry()
        self.registry.register(_Exposition(self))
        self.provider = MeterProvider(metric_readers=[reader])
        meter = self.provider.get_meter(SCOPE)
        self.events = meter.create_counter("secbus.events", description="Events committed to the log")
        self.duration = Histogram("secbus_verification_duration", "Duration of verification checks (duration_us of events)",
                                  "seconds", DURATION_BUCKETS, ("type", "outcome"), SCOPE)
        self.traces = meter.create_counter("secbus.traces.closed", description="Closed traces, once per flag")
        self.alerts = meter.create_counter("secbus.alerts", description="Alerts raised, by rule and severity")
        meter.create_observable_counter("secbus.ingest.rejects", [self._rejects],
                                        description="Requests and events refused at ingest, by code")
        meter.create_observable_gauge("secbus.handler.lag", [self._handler("lag")],
                                      description="Entries behind the log head, per handler")
        meter.create_observable_counter("secbus.handler.failures", [self._handler("failures")],
                                        description="Failed hook calls (retried), per handler")
        meter.create_observable_counter("secbus.handler.skipped", [self._handler("skipped")],
                                        description="Entries skipped by the drop lag policy, per handler")
        meter.create_observable_gauge("secbus.handler.running", [self._handler_running],
                                      description="1 while a handler delivers, 0 when it failed, is retrying, was skipped or stopped")
        meter.create_observable_gauge("secbus.open.traces", [self._figure("open_traces")],
                                      description="Traces being correlated")
        meter.create_observable_gauge("secbus.correlator.lag", [self._figure("correlator", "lag")],
                                      description="Events committed and not yet read by the correlator")
        meter.create_observable_gauge("secbus.ingest.backlog", [self._figure("ingest", "backlog")],
                                      description="Events behind the slowest block consumer")
        meter.create_observable_gauge("secbus.ingest.max_backlog", [self._figure("ingest", "max_backlog")],
                                      description="The backlog at which publishers are answered overloaded")
        meter.create_observable_gauge("secbus.log.size_bytes", [self._figure("log", "size_bytes")],
                                      description="Bytes of the event log on disk (databases and WAL files)")
        meter.create_observable_gauge("secbus.log.disk.free_bytes", [self._figure("log", "disk", "free_bytes")],
                                      description="Bytes free for the broker on the data dir's file system")
        meter.create_observable_gauge("secbus.log.disk.size_bytes", [self._figure("log", "disk", "size_bytes")],
                                      description="Size of the data dir's file system in bytes")
        meter.create_observable_counter("secbus.consumers.restarts", [self._figure("consumers", "restarts")],
                                        description="Times the consumer process was started again after it died")
        meter.create_observable_counter("secbus.log.write.failures", [self._log_writes(lambda w: w.get("failures"))],
                                        description="Failed writes to the event log (a full disk), per operation")
        meter.create_observable_gauge("secbus.log.writes.failing", [self._log_writes(lambda w: int(bool(w.get("failing_since_ns"))))],
                                      description="1 while the operation's writes to the event log fail, per operation")
        for figure in SDK_FIGURES:
            meter.create_observable_gauge(f"secbus.sdk.{figure}", [self._sdk_figure(figure)],
                                          description=f"SDK clients' last reported {figure} count ({SDK_STATS_TYPE})")
        app.add_route("GET", self.path, self._serve)

    # ---------------------------------------------------------------- hooks
    @hookimpl
    def on_events(self, events: list[dict]) -> None:
        # Count per distinct label set, then one add() each: a batch of a
        # thousand events has a handful of label sets, and each OpenTelemetry
        # add() costs microseconds.
        counts: dict[tuple, int] = {}
        durations: dict[tuple, list[float]] = {}
        for event in events:
            source = event.get("source") or {}
            key = (event.get("type"), event.get("outcome"), source.get("platform"), event.get("tenant"))
            counts[key] = counts.get(key, 0) + 1
            duration = event.get("duration_us")
            if type(duration) is int:
                durations.setdefault(key[:2], []).append(duration / 1e6)
            if key[0] == SDK_STATS_TYPE:
                self._sdk_report(event, source)
        # Durations before counts, and a scrape reads counts before durations
        # (_Exposition): a scrape that sees an event counted sees its duration.
        if durations:
            value = self.guard.value
            self.duration.observe(((value("duration", "type", type_), value("duration", "outcome", outcome)), values)
                                  for (type_, outcome), values in durations.items())
        label = self.guard.labels
        for (type_, outcome, platform, tenant), n in counts.items():
            self.events.add(n, label("events", {"type": type_, "outcome": outcome, "platform": platform,
                                                "tenant": tenant}))

    @hookimpl
    def on_trace(self, stored: tuple) -> None:
        # only the flags are counted: decode just them, not the trace's events
        flags = _trace_flags(stored[1]).flags
        with self._pending_lock:
            pending = self._pending_traces
            for flag in flags or ["none"]:
                pending[flag] = pending.get(flag, 0) + 1

    def _add_pending_traces(self) -> None:
        """Add the closed traces counted since the last scrape to the OpenTelemetry counter."""
        with self._pending_lock:
            pending, self._pending_traces = self._pending_traces, {}
        for flag, n in pending.items():
            self.traces.add(n, self.guard.labels("traces", {"flag": flag}))

    @hookimpl
    def on_alert(self, alert: dict) -> None:
        self.alerts.add(1, self.guard.labels("alerts", {"rule": alert.get("rule"), "severity": alert.get("severity")}))

    @hookimpl
    def shutdown(self) -> None:
        if self.provider is not None:
            self._add_pending_traces()
            self.provider.shutdown()

    # ------------------------------------------------------------ endpoint
    async def _serve(self, request: web.Request) -> web.Response:
        # Collection runs the observable callbacks (app.stats() reads the
        # log): keep it off the event loop.
        body = await asyncio.get_running_loop().run_in_executor(None, generate_latest, self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # ------------------------------------------------ observable callbacks
    def _read_stats(self) -> dict:
        """``app.stats()``, read once per scrape: five callbacks ask within microseconds."""
        now = time.monotonic()
        if self._stats_cache is not None and now - self._stats_cache[0] < 0.5:
            return self._stats_cache[1]
        try:
            stats = self._stats() or {}
        except Exception:  # a scrape must not fail because stats did
            stats = {}
        self._stats_cache = (now, stats)
        return stats

    def _rejects(self, options: CallbackOptions):
        rejects = self._read_stats().get("rejects") or {}
        return [Observation(n, self.guard.labels("rejects", {"code": code}))
                for code, n in rejects.items() if isinstance(n, (int, float))]

    def _handler(self, key: str):
        def callback(options: CallbackOptions):
            out = []
            for name, health in (self._read_stats().get("handlers") or {}).items():
                value = _number(health.get(key) if isinstance(health, dict) else None)
                if value is not None:
                    out.append(Observation(value, self.guard.labels(f"handler.{key}", {"handler": name})))
            return out
        return callback

    def _handler_running(self, options: CallbackOptions):
        return [Observation(int(health.get("state") == "running"), self.guard.labels("handler.running", {"handler": name}))
                for name, health in (self._read_stats().get("handlers") or {}).items() if isinstance(health, dict)]

    def _log_writes(self, value_of: Callable[[dict], Any]):
        """A callback observing ``value_of(log.writes[operation])`` per operation (commit, checkpoint, retention)."""
        def callback(options: CallbackOptions):
            writes = (self._read_stats().get("log") or {}).get("writes") or {}
            return [Observation(value, self.guard.labels("log.writes", {"operation": op}))
                    for op, w in writes.items() if isinstance(w, dict) and (value := _number(value_of(w))) is not None]
        return callback

    def _figure(self, *path: str):
        """A callback observing ``app.stats()[path[0]][path[1]]...`` (a per-stream dict: the sum)."""
        def callback(options: CallbackOptions):
            value = self._read_stats()
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            value = _number(value)
            return [] if value is None else [Observation(value)]
        return callback

    def _sdk_report(self, event: dict, source: dict) -> None:
        attrs = event.get("attrs") or {}
        figures = {k: attrs[k] for k in SDK_FIGURES
                   if isinstance(attrs.get(k), (int, float)) and not isinstance(attrs.get(k), bool)}
        if not figures:
            return
        instance = f"{source.get('host', '')}:{source.get('pid', '')}"
        labels = self.guard.labels("sdk", {"service": source.get("service"), "platform": source.get("platform"),
                                           "instance": instance})
        ts = event.get("ts") if isinstance(event.get("ts"), int) else time.time_ns()
        with self._sdk_lock:
            key = tuple(sorted(labels.items()))
            if ts >= self._sdk.get(key, (0, {}))[0]:  # the latest report of a client, not the last delivered
                self._sdk[key] = (ts, figures)

    def _sdk_figure(self, figure: str):
        def callback(options: CallbackOptions):
            # a client that stopped reporting (it exited, or its spool moved to a new process) is
            # forgotten after sdk_report_ttl, so no alert stays on for a process that is gone
            horizon = time.time_ns() - self.sdk_report_ttl_ns
            with self._sdk_lock:
                for key in [k for k, (ts, _f) in self._sdk.items() if ts < horizon]:
                    del self._sdk[key]
                items = list(self._sdk.items())
            return [Observation(figures[figure], dict(labels)) for labels, (_ts, figures) in items if figure in figures]
        return callback


def _number(value) -> float | None:
    """A figure of ``app.stats()`` as one number: a per-stream dict is summed; anything else is None."""
    if isinstance(value, dict):
        value = sum(v for v in value.values() if isinstance(v, (int, float)) and not isinstance(v, bool))
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class _Exposition:
    """The one collector of ``MetricsHandler.registry``: OpenTelemetry's
    families, with the handler's histogram where OpenTelemetry printed it
    (after ``secbus_events``), once the pending trace counts are added."""

    def __init__(self, handler: MetricsHandler):
        self.handler = handler

    def collect(self):
        self.handler._add_pending_traces()
        families = list(self.handler._otel_registry.collect())
        histogram = self.handler.duration.family()  # after the counts: see on_events
        for family in families:
            yield family
            if histogram is not None and family.name == "secbus_events":
                yield histogram
                histogram = None
        if histogram is not None:
            yield histogram


handler = MetricsHandler()
