"""A third-party secbus handler used by the broker tests.

It appends one JSON line per hook call to ``settings["out"]``, so a test in
another process can see exactly what was delivered.  Settings switch on
misbehaviour: ``fail_every`` (raise on every Nth ``on_events`` call),
``sleep_s`` (sleep in every ``on_events``), ``fail_startup``.
``stored-recorder`` is the same handler taking ``on_events(stored)``.
"""

import json
import time

from secbus import hookimpl


class Recorder:
    def __init__(self):
        self.calls = 0
        self.settings = {}
        self.out = None

    def _write(self, record):
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()

    @hookimpl
    def startup(self, app):
        self.settings = dict(app.settings)
        if self.settings.get("fail_startup"):
            raise RuntimeError("recorder: told to fail at startup")
        self.out = open(self.settings["out"], "a", encoding="utf-8")
        self.app = app
        self._write({"hook": "startup", "name": app.name, "data_dir": str(app.data_dir)})

    @hookimpl
    def on_events(self, events):
        self.calls += 1
        every = self.settings.get("fail_every", 0)
        if every and self.calls % every == 0:
            self._write({"hook": "on_events", "failed": True, "seqs": [e["seq"] for e in events]})
            raise RuntimeError(f"recorder: failing call {self.calls} on purpose")
        if self.settings.get("sleep_s"):
            time.sleep(self.settings["sleep_s"])  # the behaviour under test: a slow handler
        self._write({"hook": "on_events", "seqs": [e["seq"] for e in events], "ids": [e["id"] for e in events]})
        if self.settings.get("alert_on_type"):
            for e in events:
                if e["type"] == self.settings["alert_on_type"]:
                    self.app.publish_alert({"rule": "recorder", "severity": self.settings.get("alert_severity", "high"), "summary": f"saw {e['id']}", "event_ids": [e["id"]]})

    @hookimpl
    def on_trace(self, trace):
        self._write({"hook": "on_trace", "trace": trace})

    @hookimpl
    def on_alert(self, alert):
        self._write({"hook": "on_alert", "alert": alert})

    @hookimpl
    def shutdown(self):
        if self.out is not None:
            self._write({"hook": "shutdown"})
            self.out.close()


handler = Recorder()


class StoredRecorder(Recorder):
    """Declares ``on_events(stored)`` only: gets the batch as stored rows, never as dicts."""

    @hookimpl
    def on_events(self, stored):
        from secbus.log.stored import decode_rows

        events = decode_rows(stored)
        self._write({"hook": "on_events", "seqs": [row[0] for row in stored], "ids": [e["id"] for e in events],
                     "rows": all(type(row) is tuple and len(row) == 5 and type(row[4]) is bytes for row in stored),
                     "events": events})


stored_handler = StoredRecorder()


class Typo:
    """A handler with a misspelt hook (``on_event``): the broker must refuse it by name."""

    @hookimpl
    def on_event(self, events):
        raise AssertionError("never called")


typo_handler = Typo()
