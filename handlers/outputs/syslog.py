"""``alert-syslog``: alerts as RFC 5424 syslog messages over UDP or TCP.

Written by hand because the stdlib's ``logging.handlers.SysLogHandler``
produces the old BSD format (RFC 3164: no version, no structured data, no
reliable timestamp or year) and cannot frame TCP messages by octet count;
SIEMs parse RFC 5424 structured data into fields.  One message::

    <PRI>1 2026-11-23T13:40:00.123456Z HOST secbus PROCID RULE [secbus@32473 id="..." rule="..." ...] BOM summary

* PRI = facility * 8 + severity; alert severities map to syslog ones:
  critical 2 (crit), high 3 (err), medium 4 (warning), low 5 (notice),
  info 6 (info).  Facility ``auth`` (4) by default.
* MSGID is the rule name (printable ASCII, at most 32 characters).
* The structured data element ``secbus@<enterprise_id>`` (32473, the
  example number of RFC 5612, by default) carries id, rule, severity,
  group, count, suppressed, first_ts, last_ts and the trace ids; values
  escape ``"``, ``\\`` and ``]`` as section 6.3.3 requires.
* MSG is the summary in UTF-8, preceded by the BOM as section 6.4 asks.
* UDP sends one datagram per message; TCP uses octet counting
  (``LEN SP MSG``, RFC 6587 section 3.4.1) and reconnects after an error.

A send that fails raises, so the runner retries the alert with backoff.
"""

from __future__ import annotations

import datetime as dt
import os
import socket

from secbus import hookimpl

from .._settings import Configured, Settings
from .common import min_severity, passes

FACILITIES = {"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
              "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, **{f"local{i}": 16 + i for i in range(8)}}
SEVERITY_CODES = {"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}
BOM = "\ufeff"
NILVALUE = "-"


def _token(value: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, or the nil value."""
    text = "".join(c for c in str(value) if 33 <= ord(c) <= 126)[:limit]
    return text or NILVALUE


def _sd_escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def format_rfc5424(alert: dict, *, facility: int = 4, hostname: str | None = None, app_name: str = "secbus",
                   procid: str | None = None, enterprise_id: int = 32473, now: dt.datetime | None = None) -> bytes:
    severity = SEVERITY_CODES.get(alert.get("severity"), 4)
    stamp = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    timestamp = stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    params = [("id", alert.get("id")), ("rule", alert.get("rule")), ("severity", alert.get("severity")),
              ("group", alert.get("group")), ("count", alert.get("count")), ("suppressed", alert.get("suppressed", 0)),
              ("first_ts", alert.get("first_ts")), ("last_ts", alert.get("last_ts")),
              ("trace_ids", ",".join(map(str, alert.get("trace_ids") or [])))]
    sd = f"[secbus@{enterprise_id} " + " ".join(f'{k}="{_sd_escape(v)}"' for k, v in params if v is not None) + "]"
    header = (f"<{facility * 8 + severity}>1 {timestamp} {_token(hostname or socket.gethostname(), 255)} "
              f"{_token(app_name, 48)} {_token(procid or os.getpid(), 128)} {_token(alert.get('rule') or '', 32)}")
    return f"{header} {sd} {BOM}{alert.get('summary', '')}".encode("utf-8")


class SyslogOutput(Configured):
    def __init__(self) -> None:
        self._sock: socket.socket | None = None

    @hookimpl
    def startup(self, app) -> None:
        self.configure(app.name, app.settings, app.data_dir)

    def configure(self, name, settings, data_dir) -> None:
        s = Settings(name, settings)
        address = s.string("address", "127.0.0.1:514")
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"[handlers.{name}] address: expected HOST:PORT, got {address!r}")
        self.address = (host.strip("[]"), int(port))
        self.protocol = s.string("protocol", "udp", choices=("udp", "tcp"))
        facility = s.string("facility", "auth", choices=tuple(FACILITIES))
        self.options = {"facility": FACILITIES[facility], "hostname": s.get("hostname", None, str),
                        "app_name": s.string("app_name", "secbus"),
                        "enterprise_id": s.integer("enterprise_id", 32473, minimum=1)}
        self.timeout = s.number("timeout", 5.0, minimum=0.001)
        self.minimum = min_severity(s)
        s.reject_unknown()

    def _connect(self) -> socket.socket:
        if self._sock is None:
            family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
            if self.protocol == "udp":
                self._sock = socket.socket(family, socket.SOCK_DGRAM)
            else:
                self._sock = socket.create_connection(self.address, timeout=self.timeout)
            self._sock.settimeout(self.timeout)
        return self._sock

    @hookimpl
    def on_alert(self, alert: dict) -> None:
        if not passes(alert, self.minimum):
            return
        message = format_rfc5424(alert, **self.options)
        try:
            sock = self._connect()
            if self.protocol == "udp":
                sock.sendto(message, self.address)
            else:
                sock.sendall(str(len(message)).encode("ascii") + b" " + message)
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    @hookimpl
    def shutdown(self) -> None:
        self.close()


handler = SyslogOutput()
