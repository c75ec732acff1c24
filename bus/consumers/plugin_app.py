"""What a handler's ``startup(app)`` receives: ``PluginApp`` and its read-only ``LogView``.

Documented for plugin authors in ``secbus.hookspecs`` and docs/handlers.md.
Both live in the consumer process (:mod:`secbus.consumers.process`), where
handlers run.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Mapping

from secbus_sdk.event import SEVERITIES, new_event_id

if TYPE_CHECKING:
    from .process import ConsumerProcess


class LogView:
    """Read-only queries on the log for plugins (``app.log``)."""

    def __init__(self, process: "ConsumerProcess"):
        self._process = process

    def trace(self, tenant: str | None, trace_id: str) -> list[dict]:
        """Every retained event of a trace, in time order, closed or still open."""
        return self._process.log.trace(tenant, trace_id, open_after=self._process.correlator.cursor)

    def query(self, tenant: str | None = None, type_prefix: str | None = None, since_ns: int | None = None,
              until_ns: int | None = None, limit: int = 1000, outcome: str | None = None,
              newest: bool = False, fields: Mapping[str, str] | None = None, after_seq: int = 0) -> list[dict]:
        """Events in log order matching every filter given (``since_ns <= ts < until_ns``); with
        ``newest``, the last ``limit`` matches, the most recent first; ``fields`` must equal
        the given text (``{"actor.user": "alice", "attrs.alg": "ed25519"}``); only those with
        ``seq`` above ``after_seq`` (the next page of a long listing)."""
        return self._process.log.query(tenant, type_prefix, since_ns, until_ns, limit, outcome, newest, fields, after_seq)

    def head(self, stream: str = "events") -> int:
        return self._process.log.head(stream)


class PluginApp:
    """The broker's handle for one handler (see ``secbus.hookspecs.startup``)."""

    def __init__(self, process: "ConsumerProcess", name: str, settings: dict[str, Any]):
        self._process = process
        #: the handler's name (its entry-point name)
        self.name = name
        #: its ``[handlers.<name>]`` table, minus the runner keys (lag_policy, max_lag, batch_size)
        self.settings = settings
        #: the broker's data dir; keep a handler's files under ``data_dir / name``
        self.data_dir = process.data_dir
        #: read-only queries: ``trace(tenant, trace_id)``, ``query(...)``
        self.log = LogView(process)
        #: a logger named ``secbus.handler.<name>``
        self.logger = logging.getLogger(f"secbus.handler.{name}")

    def publish_alert(self, alert: dict[str, Any]) -> int:
        """Append an alert durably to the alerts stream; return its offset.

        It reaches every handler's ``on_alert`` and the live feed as
        ``alert.<severity>``. ``severity`` is required (info .. critical);
        ``id`` is added when missing."""
        if not isinstance(alert, dict):
            raise TypeError(f"publish_alert: expected a dict, got {type(alert).__name__}")
        severity = alert.get("severity")
        if severity not in SEVERITIES:
            raise ValueError(f"publish_alert: severity: expected one of {', '.join(SEVERITIES)}, got {severity!r}")
        record = dict(alert)
        record.pop("seq", None)
        record.setdefault("id", new_event_id())
        return self._process.publish_alert(record)

    def add_route(self, method: str, path: str, handler) -> None:
        """Serve an aiohttp handler on the broker's HTTP port (call it during startup)."""
        self._process.http.add_route(method, path, handler)

    def stats(self) -> dict[str, Any]:
        """The /healthz document."""
        return self._process.stats()
