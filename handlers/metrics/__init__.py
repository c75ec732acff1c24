"""The metrics handler: OpenTelemetry instruments exposed for Prometheus at the
broker's ``/metrics`` (``plugin.py``), with a cardinality guard on every label
(``guard.py``).  Reference: docs/handlers.md, section metrics."""
