"""The pytest fixture ``secbus_broker``: real brokers for a test, stopped at its end.

Registered under the ``pytest11`` entry point, so any project whose environment
has secbus installed can use it (:mod:`secbus.testing` has the details)::

    def test_denylist_alerts(secbus_broker):
        broker = secbus_broker(handlers=["denylist", "alert-file"])

A failed test's report shows the log of every broker it started.
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from .testing import Broker, running_broker


@pytest.fixture
def secbus_broker(request, tmp_path):
    """``secbus_broker(config=None, handlers=None, env=None, timeout=20.0) -> Broker``, ready."""
    started: list[Broker] = []
    request.node._secbus_brokers = started
    with ExitStack() as brokers:
        def start(config: dict | None = None, handlers: list[str] | None = None, env: dict | None = None,
                  timeout: float = 20.0) -> Broker:
            return brokers.enter_context(running_broker(tmp_path, config=config, handlers=handlers, env=env,
                                                        timeout=timeout, started=started.append))

        yield start


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if report.failed:
        for broker in getattr(item, "_secbus_brokers", ()):
            report.sections.append((f"secbus broker log {broker.log_path}", broker.log_text()))
