"""Wakeup: an advance wakes the waiters of its stream and no others; a poke wakes all."""

from __future__ import annotations

import threading
import time

from secbus.consumers.wakeup import Wakeup
from support.broker import wait_until


def start_waiting(wakeup: Wakeup, results: dict, name: str, seen: dict, timeout: float) -> threading.Thread:
    def run():
        t0 = time.monotonic()
        results[name] = (wakeup.wait(seen, timeout), time.monotonic() - t0)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_an_advance_wakes_the_waiters_of_its_stream_only():
    wakeup, results = Wakeup(), {}
    threads = [start_waiting(wakeup, results, "events", {"events": 0}, 30.0),
               start_waiting(wakeup, results, "both", {"events": 0, "traces": 0}, 30.0),
               start_waiting(wakeup, results, "traces", {"traces": 0}, 1.0)]
    wait_until(lambda: len(wakeup._waiters) == 3, message="three waiters registered")
    wakeup.advance("events", 5)
    for thread in threads:
        thread.join(10)
    assert results["events"][0] and results["both"][0]  # woken at once, long before 30 s
    assert results["events"][1] < 5 and results["both"][1] < 5
    assert results["traces"] == (False, results["traces"][1]) and results["traces"][1] >= 1.0  # slept to its timeout
    assert wakeup.head("events") == 5 and wakeup._waiters == []


def test_a_head_already_past_returns_at_once_and_a_poke_wakes_everyone():
    wakeup, results = Wakeup({"events": 3}), {}
    assert wakeup.wait({"events": 2}, 30.0) is True
    threads = [start_waiting(wakeup, results, s, {s: 0}, 30.0) for s in ("traces", "alerts")]
    wait_until(lambda: len(wakeup._waiters) == 2, message="two waiters registered")
    wakeup.poke()
    for thread in threads:
        thread.join(10)
    assert all(ok and took < 5 for ok, took in results.values()) and len(results) == 2
