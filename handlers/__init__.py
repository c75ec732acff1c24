"""Built-in handler plugins, registered under the ``secbus.handlers`` entry-point
group exactly like third-party ones (docs/handlers.md), using only the ``app``
handle a third-party plugin gets:

* ``audit/``     every committed event into a hash-chained JSON Lines log (docs/audit.md)
* ``metrics/``   OpenTelemetry instruments, Prometheus exposition at ``/metrics``
* ``alerting/``  rules over events and traces -> alerts (docs/alerting.md)
* ``outputs/``   alert outputs: log, JSON Lines file, webhook, RFC 5424 syslog
"""
