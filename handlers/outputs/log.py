"""``alert-log``: alerts into Python logging (logger ``secbus.alerts`` by default).

Levels follow the alert's severity: info and low at INFO, medium at WARNING,
high at ERROR, critical at CRITICAL, so the broker's log configuration (or
any logging handler attached to the logger) decides where they go.
Settings: ``logger``, ``min_severity``.
"""

from __future__ import annotations

import logging

from secbus import hookimpl

from .._settings import Configured, Settings
from .common import alert_line, min_severity, passes

LEVELS = {"info": logging.INFO, "low": logging.INFO, "medium": logging.WARNING,
          "high": logging.ERROR, "critical": logging.CRITICAL}


class LogOutput(Configured):
    def __init__(self) -> None:
        self.logger = logging.getLogger("secbus.alerts")
        self.minimum = 0

    def configure(self, name, settings, data_dir) -> None:
        s = Settings(name, settings)
        self.logger = logging.getLogger(s.string("logger", "secbus.alerts"))
        self.minimum = min_severity(s)
        s.reject_unknown()

    @hookimpl
    def startup(self, app) -> None:
        self.configure(app.name, app.settings, app.data_dir)

    @hookimpl
    def on_alert(self, alert: dict) -> None:
        if passes(alert, self.minimum):
            self.logger.log(LEVELS.get(alert.get("severity"), logging.WARNING), "ALERT %s", alert_line(alert))


handler = LogOutput()
