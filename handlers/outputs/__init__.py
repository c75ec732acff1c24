"""Alert outputs: ``on_alert`` plugins that carry alerts out of the broker.

The live feed (``alert.<severity>`` topics) is the broker's own; these add a
Python log (``alert-log``), a JSON Lines file (``alert-file``), an HTTP
webhook (``alert-webhook``) and RFC 5424 syslog (``alert-syslog``).  Each is
a separate handler with its own cursor on the alerts stream, so a webhook
that is down delays only the webhook.
"""
