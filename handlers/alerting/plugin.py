"""The ``alerting`` handler plugin: the rule engine behind the broker's hooks.

Settings (``[handlers.alerting]``, docs/alerting.md): ``rules`` (a rules
file, added to the defaults), ``default_rules`` (true), ``max_groups``
(10000 per rule), ``max_ids`` (100 event ids per alert), ``state_interval``
(1 s), ``ledger_max_rows`` (1000000).

Alerts go out through ``app.publish_alert``: the broker appends them to its
alerts stream, from which the feed (``alert.<severity>``) and every
``on_alert`` output (log, file, webhook, syslog) take them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from aiohttp import web

from secbus import hookimpl

from .._settings import Configured, Settings
from .engine import Engine
from .ledger import Ledger
from .rules import load_rules


class _TraceHead(msgspec.Struct):
    """A stored trace's fields (docs/handlers.md, on_trace), its events left encoded."""

    tenant: Any = None
    trace_id: Any = None
    events: msgspec.Raw = msgspec.Raw(b"\x90")
    event_count: Any = None
    platforms: Any = None
    services: Any = None
    outcomes: Any = None
    first_ts: Any = None
    last_ts: Any = None
    first_seq: Any = None
    last_seq: Any = None
    flags: Any = None


_trace_head = msgspec.msgpack.Decoder(_TraceHead).decode
_decode = msgspec.msgpack.Decoder().decode


class AlertingHandler(Configured):
    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.ledger: Ledger | None = None
        self.state_interval_ns = 10**9
        self._saved_at = 0
        self._max_ts = 0

    def configure(self, name, settings, data_dir) -> None:
        """The settings and the rules (default and ``rules`` file): every mistake named here."""
        s = Settings(name, settings)
        self.rules = load_rules(s.path("rules", None, base=data_dir), s.boolean("default_rules", True))
        self.max_groups = s.integer("max_groups", 10_000, minimum=1)
        self.max_ids = s.integer("max_ids", 100, minimum=1)
        self.state_interval_ns = int(s.number("state_interval", 1.0) * 1e9)
        self.ledger_rows = s.integer("ledger_max_rows", 1_000_000, minimum=1)
        s.reject_unknown()

    @hookimpl
    def startup(self, app) -> None:
        self.configure(app.name, app.settings, app.data_dir)
        self.ledger = Ledger(app.data_dir / "alerting" / "state.db", self.ledger_rows)
        self.engine = Engine(self.rules, app.publish_alert, max_groups=self.max_groups, max_ids=self.max_ids,
                             on_suppressed=self.ledger.add)
        saved = self.ledger.load_state()
        if saved:
            self.engine.restore(saved)
        self._saved_at = time.monotonic_ns()
        app.add_route("GET", "/alerting/alerts/{alert_id}", self._suppressed_route)
        app.add_route("GET", "/alerting/rules", self._rules_route)
        app.logger.info("alerting: %d rules loaded (%s)", len(self.rules), ", ".join(r.name for r in self.rules))

    def _after(self, published: int, max_ts: int) -> None:
        now = time.monotonic_ns()
        self._max_ts = max(self._max_ts, max_ts)
        due = published or now - self._saved_at >= self.state_interval_ns
        if due:
            self.engine.sweep(self._max_ts)
            self._saved_at = now
        self.ledger.commit(self.engine.changes() if due else None)

    @hookimpl
    def on_events(self, events: list[dict]) -> None:
        published = self.engine.process_events(events)
        self._after(published, max((e.get("ts", 0) for e in events), default=0))

    @hookimpl
    def on_trace(self, stored: tuple) -> None:
        # The trace's own fields first; its events only if a trace rule gets that far (decoding
        # every trace's events was most of this hook's cost, and few traces pass trace_where).
        seq, body = stored
        head = _trace_head(body)
        trace = {name: getattr(head, name) for name in head.__struct_fields__ if name != "events"}
        trace["seq"] = seq
        published = self.engine.process_trace(trace, lambda: _decode(head.events))
        self._after(published, trace.get("last_ts") or 0)

    @hookimpl
    def shutdown(self) -> None:
        if self.engine is not None and self.ledger is not None:
            self.ledger.commit(self.engine.changes())
            self.ledger.close()

    async def _suppressed_route(self, request: web.Request) -> web.Response:
        alert_id = request.match_info["alert_id"]
        limit = request.query.get("limit", "1000")
        if not limit.isdigit():
            return web.json_response({"error": f"limit: expected a non-negative integer, got {limit!r}"}, status=400)
        loop = asyncio.get_running_loop()  # sqlite off the event loop
        data = await loop.run_in_executor(None, self.ledger.suppressed_by, alert_id, int(limit))
        return web.json_response(data)

    async def _rules_route(self, request: web.Request) -> web.Response:
        return web.json_response([{"name": r.name, "kind": r.kind, "severity": r.severity,
                                   "description": r.description, "group_by": r.group_by,
                                   "window_s": r.window_ns / 1e9, "suppress_s": r.suppress_ns / 1e9}
                                  for r in self.engine.rules])


handler = AlertingHandler()
