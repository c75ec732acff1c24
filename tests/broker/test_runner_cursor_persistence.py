"""When a handler's runner stores its cursor: not at every idle moment (a commit per handler
per batch under steady traffic), but never later than PERSIST_EVERY_S after it moved."""

from __future__ import annotations

import time

import pluggy
import pytest

from secbus import hookimpl, hookspecs
from secbus.consumers import runner as runner_mod
from secbus.consumers.runner import HandlerRunner
from secbus.consumers.wakeup import Wakeup
from secbus.log.sqlite import SqliteLog
from support.broker import wait_until
from support.events import make_event

from .test_broker_log import stamped


class Counting:
    def __init__(self):
        self.seen = 0

    @hookimpl
    def on_events(self, events):
        self.seen += len(events)


class StoringLog(SqliteLog):
    """The real log, counting cursor writes."""

    def __init__(self, *args, **kwargs):
        self.writes = 0
        super().__init__(*args, **kwargs)

    def set_cursor(self, consumer, stream, offset):
        self.writes += 1
        super().set_cursor(consumer, stream, offset)


@pytest.fixture
def setup(tmp_path):
    log = StoringLog(tmp_path)
    pm = pluggy.PluginManager("secbus")
    pm.add_hookspecs(hookspecs)
    plugin = Counting()
    pm.register(plugin, name="counting")
    wakeup = Wakeup()
    runner = HandlerRunner("counting", plugin, pm, log, wakeup, {"lag_policy": "block", "max_lag": 10**6, "batch_size": 1000})
    yield log, wakeup, runner, plugin
    runner.stop(time.monotonic() + 5)
    log.close()


def test_an_idle_runner_stores_a_moved_cursor_once_it_is_due_not_at_once(setup):
    log, wakeup, runner, plugin = setup
    log.append_events([stamped(make_event()) for _ in range(3)])
    wakeup.advance("events", 3)
    start_writes = log.writes  # the new handler's starting cursor
    assert runner._step("events") and plugin.seen == 3
    runner._persisted_at = time.monotonic()  # as if it had just stored
    wait = runner._idle_persist()
    assert 0 < wait <= runner_mod.PERSIST_EVERY_S and log.writes == start_writes  # not yet
    runner._persisted_at -= runner_mod.PERSIST_EVERY_S
    assert runner._idle_persist() == runner_mod.IDLE_WAIT_S and log.get_cursor("counting", "events") == 3
    assert runner._idle_persist() == runner_mod.IDLE_WAIT_S and log.writes == start_writes + 1  # nothing moved since


def test_a_running_handler_that_goes_idle_has_its_cursor_stored_soon_after(setup):
    log, wakeup, runner, plugin = setup
    runner.start()
    for n in range(1, 21):  # 20 small batches, each followed by an idle moment
        log.append_events([stamped(make_event())])
        wakeup.advance("events", n)
        wait_until(lambda: plugin.seen == n, timeout=10, message=f"batch {n} delivered")
    wait_until(lambda: log.get_cursor("counting", "events") == 20, timeout=5, message="the cursor stored once idle")
    assert log.writes < 20  # not one commit per batch
