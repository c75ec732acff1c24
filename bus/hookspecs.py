"""The handler plugin hooks: this module is their API reference.

secbus loads handlers with pluggy (project name ``secbus``). A handler is a
module or object whose functions carry ``@secbus.hookimpl``; it is registered
under the entry-point group ``secbus.handlers`` and enabled by name in the
config. Built-in handlers (audit, metrics, alerting, alert outputs) are
registered exactly the same way and use nothing else.

Every handler consumes the broker's durable logs (events, closed traces,
alerts) behind cursors of its own, in a runner thread of its own: a hook that
raises is retried with backoff for the same batch, and neither stops ingest
nor any other handler. Delivery is at least once per handler, in log order.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("secbus")
hookimpl = pluggy.HookimplMarker("secbus")


@hookspec
def startup(app) -> None:
    """Called once at broker start, before any other hook of this handler.

    It runs in the broker's main thread, before the handler's runner thread
    starts and before the HTTP server serves, so routes added here are live
    from the first request.

    ``app`` is the broker's handle for plugins (``secbus.consumers.plugin_app.PluginApp``):

    - ``app.name``: this handler's name (its entry-point name);
    - ``app.settings``: its config table ``[handlers.<name>]`` as a dict,
      without the runner's keys ``lag_policy``, ``max_lag``, ``batch_size``;
    - ``app.data_dir``: the broker's data dir (``pathlib.Path``); keep files
      under ``app.data_dir / app.name``;
    - ``app.publish_alert(alert) -> int``: durably append an alert (a dict
      with at least ``severity``; ``id`` is added when missing) to the alerts
      stream; every handler's ``on_alert`` and the live feed
      (``alert.<severity>``) get it; returns its offset;
    - ``app.add_route(method, path, handler)``: serve an aiohttp handler
      (``async def handler(request) -> web.Response``) on the broker's HTTP
      port; only during ``startup``;
    - ``app.stats() -> dict``: the ``/healthz`` document;
    - ``app.log``: read-only queries, ``trace(tenant, trace_id)`` (every
      stored event of a trace, time order) and ``query(tenant=None,
      type_prefix=None, since_ns=None, until_ns=None, limit=1000)``;
    - ``app.logger``: a ``logging.Logger`` named ``secbus.handler.<name>``.

    Raise to refuse to start: the broker logs it, the handler stays stopped
    (state ``failed`` in ``/healthz``) and its cursor holds nothing back,
    while the other handlers run.
    """


@hookspec
def on_events(events: list[dict], stored: list[tuple]) -> None:
    """Called with a batch of committed events, in log order.

    Each event is a dict as stored: the publisher's fields plus ``seq`` (the
    log offset, strictly increasing), ``received_ns``, ``publisher`` and
    ``tenant``. Returning means the batch is handled and the cursor moves
    past it; raising means the same batch comes again after a backoff, so
    make handling idempotent (``seq`` is a good key).

    Treat the events as read-only: the same dicts are handed to every
    handler (the broker keeps the newest events in memory instead of
    decoding them once per handler). Copy before changing one.

    ``stored`` is the same batch as the log keeps it, for a handler that
    hands events on (to a process, a file, the network) without reading
    them: one ``(seq, received_ns, publisher, tenant, body)`` tuple per
    event, ``body`` the event's msgpack without those four fields
    (``secbus.log.stored.decode_rows(stored)`` gives the ``events`` dicts).
    Declare only the arguments you use (pluggy passes no others): a handler
    whose ``on_events`` takes ``stored`` and not ``events`` is never given
    dicts, so the broker decodes nothing for it (the audit handler).
    """


@hookspec
def on_trace(trace: dict, stored: tuple) -> None:
    """Called with one closed, correlated trace.

    Keys: ``tenant``, ``trace_id``, ``events`` (in time order),
    ``platforms``, ``services``, ``outcomes``, ``first_ts``, ``last_ts``,
    ``flags`` (a list from ``cross_platform``, ``mixed_outcomes``, ``evicted``,
    ``late``) and ``seq`` (the trace log offset). Same delivery rules as
    :func:`on_events`.

    ``stored`` is the same trace as ``(seq, body)``: ``body`` is the msgpack
    of ``trace`` without ``seq``. As for :func:`on_events`, declare only
    what you use: a handler that takes only ``stored`` is never given a
    decoded trace, so a handler that reads a few fields (decoding just those,
    e.g. with a msgspec Struct) does not pay for every event in the trace.
    """


@hookspec
def on_alert(alert: dict) -> None:
    """Called with one alert raised by any handler through ``app.publish_alert``.

    Keys: ``id``, ``rule``, ``severity``, ``group``, ``count``,
    ``suppressed``, ``first_ts``, ``last_ts``, ``event_ids``, ``trace_ids``,
    ``summary`` and ``seq`` (the alert log offset). Alert outputs (log, file,
    webhook, syslog) implement this hook. Same delivery rules as
    :func:`on_events`.
    """


@hookspec
def shutdown() -> None:
    """Called once when the broker stops, in the handler's runner thread,
    after its last batch.

    At SIGINT/SIGTERM the broker stops intake, then each runner delivers
    what is committed until it is caught up or ``handlers.shutdown_deadline_s``
    passes, then calls this. Flush and close files here. Not called for a
    handler whose ``startup`` failed, nor when the broker is killed.
    """
