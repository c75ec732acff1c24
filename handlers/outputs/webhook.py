"""``alert-webhook``: HTTP POST of each alert as JSON, with timeouts, retries and backoff.

Delivery policy (why it is this way):

* each POST has a ``timeout`` (5 s): a hung receiver must not hold the
  output forever;
* a connection error, a timeout, HTTP 408, 429 or any 5xx is *transient*:
  retried up to ``retries`` times (4) with exponential backoff from
  ``backoff`` seconds (0.5), doubling, capped at ``max_backoff`` (30),
  honouring ``Retry-After`` (seconds) when the receiver sends it;
* when the retries are used up the hook raises, so the broker's runner
  counts a failure, backs off and delivers the same alert again later:
  alerts are never dropped because a receiver was down, only delayed, and
  only this output waits (it has its own cursor);
* any other 4xx is a *permanent* refusal of this payload (retrying the same
  bytes cannot help): logged with the status, counted in ``rejected``, and
  the output moves on instead of blocking every later alert.

Every POST carries ``Idempotency-Key: <alert id>`` because delivery is at
least once: a receiver can drop a repeat.  Configured ``headers`` (e.g. an
``Authorization`` token) are sent but never logged, and logs and errors name the
receiver by scheme, host and port only (``secbus.shown``): a webhook URL often
holds its secret in the path or query.  stdlib ``urllib`` is
used because the hook runs in the handler's own thread, where a blocking
call is the simplest correct thing.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request

from secbus import hookimpl
from secbus.shown import shown_url

from .._settings import Configured, Settings
from .common import min_severity, passes

log = logging.getLogger("secbus.handlers.webhook")
TRANSIENT = frozenset({408, 425, 429})


class WebhookError(RuntimeError):
    """Delivery failed after every retry; the runner will try again."""


class WebhookOutput(Configured):
    def __init__(self) -> None:
        self.delivered = 0
        self.rejected = 0
        self.attempts = 0
        self.sleep = time.sleep

    @hookimpl
    def startup(self, app) -> None:
        self.configure(app.name, app.settings, app.data_dir)

    def configure(self, name, settings, data_dir) -> None:
        s = Settings(name, settings)
        self.url = s.string("url")
        self.shown = shown_url(self.url)
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"[handlers.{name}] url: expected an http:// or https:// URL, got {self.shown!r}")
        self.timeout = s.number("timeout", 5.0, minimum=0.001)
        self.retries = s.integer("retries", 4)
        self.backoff = s.number("backoff", 0.5)
        self.max_backoff = s.number("max_backoff", 30.0)
        headers = s.get("headers", {}, dict, lambda h: all(isinstance(v, str) for v in h.values()),
                        "a table of header = \"value\" strings")
        self.headers = {"Content-Type": "application/json", "User-Agent": "secbus-alert-webhook/1", **headers}
        self.minimum = min_severity(s)
        s.reject_unknown()

    def _post(self, body: bytes, alert_id: str) -> tuple[int | None, float | None, str]:
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={**self.headers, "Idempotency-Key": alert_id})
        self.attempts += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, None, ""
        except urllib.error.HTTPError as exc:
            retry_after = exc.headers.get("Retry-After") if exc.headers else None
            try:
                delay = float(retry_after) if retry_after else None
            except ValueError:
                delay = None
            return exc.code, delay, f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            return None, None, f"{type(reason).__name__}: {reason}"

    @hookimpl
    def on_alert(self, alert: dict) -> None:
        if not passes(alert, self.minimum):
            return
        body = json.dumps(alert, sort_keys=True, ensure_ascii=False, default=repr).encode("utf-8")
        delay = self.backoff
        problem = ""
        for attempt in range(self.retries + 1):
            status, retry_after, problem = self._post(body, str(alert.get("id")))
            if status is not None and 200 <= status < 300:
                self.delivered += 1
                return
            if status is not None and 400 <= status < 500 and status not in TRANSIENT:
                self.rejected += 1
                log.error("alert-webhook: %s refused alert %s with %s; not retrying this alert",
                          self.shown, alert.get("id"), problem)
                return
            if attempt < self.retries:
                wait = min(self.max_backoff, retry_after if retry_after is not None else delay)
                log.warning("alert-webhook: attempt %d for alert %s failed (%s); retrying in %.2fs",
                            attempt + 1, alert.get("id"), problem, wait)
                self.sleep(wait)
                delay = min(self.max_backoff, delay * 2)
        raise WebhookError(f"alert-webhook: {self.shown}: alert {alert.get('id')} not delivered after "
                           f"{self.retries + 1} attempts ({problem})")


handler = WebhookOutput()
