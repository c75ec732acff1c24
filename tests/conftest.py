"""Shared fixtures: a real broker process, and its log in the report when a test fails.

Use ``broker_factory(config=..., handlers=[...])`` for a broker with its own
settings, or the ``broker`` fixture for one on the default config: both stop
the broker at teardown (SIGTERM, then SIGKILL if it hangs).  A broker started
with ``start_broker`` directly is the test's to stop; whatever is still
running when the session ends is killed, so no broker outlives the run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import broker as _support  # noqa: E402
from support.broker import BrokerProcess, RawClient, start_broker, wait_until  # noqa: E402,F401


@pytest.fixture(scope="session", autouse=True)
def _no_broker_outlives_the_session():
    yield
    _support.stop_leftovers()


@pytest.fixture
def broker_factory(tmp_path):
    """``broker_factory(config=None, handlers=None)``: start brokers that are stopped at teardown."""
    started: list[BrokerProcess] = []

    def factory(config: dict | None = None, handlers: list[str] | None = None, env: dict | None = None) -> BrokerProcess:
        b = start_broker(tmp_path, config=config, handlers=handlers, env=env)
        started.append(b)
        return b

    yield factory
    for b in started:
        try:
            b.stop()
        except AssertionError:
            b.kill()


@pytest.fixture
def broker(broker_factory) -> BrokerProcess:
    """A broker on the default config (built-in handlers that are installed), free ports, temp data dir."""
    return broker_factory()


@pytest.fixture
def raw_client(broker):
    with RawClient(broker.ingest) as client:
        yield client


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for b in _support.REGISTRY:
            report.sections.append((f"broker log {b.log_path}", b.log_text()))


@pytest.fixture(autouse=True)
def _forget_brokers():
    """Only brokers of the current test are shown in its failure report."""
    _support.REGISTRY.clear()
    yield
