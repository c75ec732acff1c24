"""The client's own ``perf.sdk.stats`` report (proto/EVENTS.md, ``perf.sdk.stats``).

Why: events the bus never received (dropped, written to the fallback, stuck in
the spool) are invisible to the broker unless the client says so.  Every
``stats_interval`` the sender thread puts one ``perf.sdk.stats`` event in the
queue with the six counters EVENTS.md lists; the metrics handler turns the
latest one into ``secbus_sdk_<name>`` gauges and the default rule
``perf-sdk-dropping-events`` alerts on ``dropped > 0``.

Decisions (documented in the README):

* Heartbeat: a report is sent every interval even when nothing changed, so an
  operator can tell a quiet client from a dead one (one small event a minute
  at the default).  ``close()`` adds a final report only when the counters
  changed since the last one (or, with no report yet, when the client carried
  any event at all).
* No self-inflation: the counters are read *before* the report is queued, so
  a report never counts itself in ``queued``.  The report bypasses ``on_full``:
  when the queue is full it is skipped, never counted in ``dropped``, never
  written to the fallback, never blocks the sender.  Once queued it is an
  ordinary event (spooled and replayed like the others, so it shows in
  ``sent``/``acked``); reports are produced by the timer alone, never by
  another report, so they cannot feed themselves.
"""

from __future__ import annotations

from typing import Any, Mapping

EVENT_TYPE = "perf.sdk.stats"
# The attrs EVENTS.md defines, in the order it lists them: name -> key of ``Client.stats()``.
ATTRS: tuple[tuple[str, str], ...] = (
    ("queued", "queued"),
    ("spooled", "spool_events"),  # events in the disk spool *now*, not the running total
    ("dropped", "dropped"),
    ("fallback", "fallback"),
    ("replayed", "replayed"),
    ("rejected", "rejected"),
)
DEFAULT_INTERVAL = 60.0


def report_attrs(stats: Mapping[str, Any]) -> dict:
    """The ``perf.sdk.stats`` attrs (all integers) from a ``Client.stats()`` snapshot."""
    return {name: int(stats[key]) for name, key in ATTRS}


def outcome_and_severity(attrs: Mapping[str, int]) -> tuple[str, str]:
    """EVENTS.md: ``failure``/``high`` once anything was dropped, else ``success``/``info``."""
    if attrs["dropped"] > 0:
        return "failure", "high"
    return "success", "info"


def carried_anything(stats: Mapping[str, Any]) -> bool:
    """Whether the client has handled any event at all (for the final report with none before)."""
    return any(stats[k] for k in ("queued", "sent", "spooled", "dropped", "fallback", "rejected", "replayed"))
