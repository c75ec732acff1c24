"""The durable log: the spine every consumer reads behind its own cursor.

``base`` is the small interface handlers, the correlator and ingest depend on;
``sqlite`` is the default embedded implementation.  A distributed log can
replace it by implementing :class:`~secbus.log.base.EventLog`.
"""

from .base import STREAMS, EventLog, StampedEvent
from .sqlite import SqliteLog, open_log

__all__ = ["STREAMS", "EventLog", "StampedEvent", "SqliteLog", "open_log"]
