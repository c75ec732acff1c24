"""A handler plugin for the benchmarks, installed through a real entry point
(``secbus.handlers``: ``bench-probe``) like any third-party handler.

What it does, by its settings (``[handlers.bench-probe]``):

* always: for every event, ``time.time_ns() - event["ts"]`` is the
  publish-to-handler latency (the publisher stamps ``ts`` when it publishes);
  it keeps up to ``max_samples`` of them and counts events and distinct ids;
* ``sleep_ms``: sleeps that long per batch: a deliberately slow handler that
  builds a backlog behind its cursor (memory benchmark);
* ``fail_rate``: raises on that fraction of batches, at random: the broker
  must retry them (soak benchmark); ``ids_file`` appends every id it handled
  successfully, one per line, so the soak can check nothing was skipped.

``GET /bench/probe`` returns the counts and latency percentiles;
``POST /bench/probe/reset`` clears them (between fixed-rate steps).
"""

from __future__ import annotations

import json
import random
import threading
import time

import pluggy

hookimpl = pluggy.HookimplMarker("secbus")


class Probe:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.settings: dict = {}
        self.reset()

    def reset(self) -> None:
        with getattr(self, "lock", threading.Lock()):
            self.samples: list[int] = []
            self.count = 0
            self.batches = 0
            self.failures = 0
            self.last_seq = 0
            self.first_ns = None
            self.last_ns = None

    @hookimpl
    def startup(self, app) -> None:
        self.settings = dict(app.settings or {})
        self.max_samples = int(self.settings.get("max_samples", 2_000_000))
        self.sleep_s = float(self.settings.get("sleep_ms", 0)) / 1000.0
        self.fail_rate = float(self.settings.get("fail_rate", 0.0))
        self.rng = random.Random(self.settings.get("seed", 1))
        ids_file = self.settings.get("ids_file")
        self.ids_fh = open(ids_file, "a", encoding="utf-8") if ids_file else None
        app.add_route("GET", "/bench/probe", self._get)
        app.add_route("POST", "/bench/probe/reset", self._reset)

    @hookimpl
    def on_events(self, events: list) -> None:
        if self.sleep_s:
            time.sleep(self.sleep_s)
        if self.fail_rate and self.rng.random() < self.fail_rate:
            self.failures += 1
            raise RuntimeError("bench-probe: failing this batch on purpose (fail_rate)")
        now = time.time_ns()
        with self.lock:
            room = self.max_samples - len(self.samples)
            if room > 0:
                self.samples.extend(now - e["ts"] for e in events[:room])
            self.count += len(events)
            self.batches += 1
            self.last_seq = events[-1]["seq"] if events else self.last_seq
            if self.first_ns is None:
                self.first_ns = now
            self.last_ns = now
        if self.ids_fh is not None:
            self.ids_fh.write("".join(e["id"] + "\n" for e in events))
            self.ids_fh.flush()

    @hookimpl
    def shutdown(self) -> None:
        if self.ids_fh is not None:
            self.ids_fh.close()

    def summary(self) -> dict:
        with self.lock:
            values = sorted(self.samples)
            out = {"count": self.count, "batches": self.batches, "failures": self.failures,
                   "last_seq": self.last_seq, "samples": len(values), "first_ns": self.first_ns, "last_ns": self.last_ns}
        for q in (50, 90, 99, 100):
            if values:
                idx = min(len(values) - 1, max(0, -(-q * len(values) // 100) - 1))
                out[f"p{q}_ms"] = values[idx] / 1e6
        return out

    async def _get(self, request):
        from aiohttp import web

        return web.Response(text=json.dumps(self.summary()), content_type="application/json")

    async def _reset(self, request):
        from aiohttp import web

        self.reset()
        return web.Response(text="{}", content_type="application/json")


handler = Probe()
