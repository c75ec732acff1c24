"""The pytest fixture ``secbus_broker``: real brokers for a test, stopped at its end.

Registered under the ``pytest11`` entry point, so any project whose environment
has secbus installed can use it (:mod:`secbus.testing` has the details)::

    def test_denylist_alerts(secbus_broker):
        broker = secbus_broker(handlers=["denylist", "alert-file"])

A failed test's report shows the log of every broker it started.
"""

from __future__ import annotations

import pytest

from .testing import Broker, next_dir


@pytest.fixture
def secbus_broker(request, tmp_path):
    """``secbus_broker(config=None, handlers=None, env=None, timeout=20.0) -> Broker``, ready."""
    started: list[Broker] = []
    request.node._secbus_brokers = started

    def start(config: dict | None = None, handlers: list[str] | None = None, env: dict | None = None,
              timeout: float = 20.0) -> Broker:
        broker = Broker(next_dir(tmp_path), config=config, handlers=handlers, env=env).start()
        started.append(broker)
        broker.wait_ready(timeout)
        return broker

    yield start
    for broker in started:
        broker.close_clients()
        try:
            broker.stop()
        except AssertionError:  # it hung and was killed: the test already has what it needs
            pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if report.failed:
        for broker in getattr(item, "_secbus_brokers", ()):
            report.sections.append((f"secbus broker log {broker.log_path}", broker.log_text()))
