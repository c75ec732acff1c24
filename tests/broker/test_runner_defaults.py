"""Where a handler's runner options come from: [handlers.<name>], else the plugin's
``runner_defaults``, else [handlers]; a bad declared default is ignored, not trusted."""

from __future__ import annotations

import logging

import pytest

from secbus import config as config_mod
from secbus.config import ConfigError, handler_settings


class Declares:
    runner_defaults = {"batch_size": 5000, "lag_policy": "drop", "unknown": 1}


def broker_config(**per_handler) -> dict:
    cfg = config_mod.load(environ={})
    if per_handler:
        cfg["handlers"]["h"] = per_handler
    return cfg


def test_the_plugin_default_beats_the_broker_default_and_the_handler_table_beats_both():
    assert handler_settings(broker_config(), "h")["batch_size"] == 1000  # a plugin that declares nothing
    declared = handler_settings(broker_config(), "h", Declares())
    assert declared["batch_size"] == 5000 and declared["lag_policy"] == "drop" and "unknown" not in declared
    assert handler_settings(broker_config(batch_size=7), "h", Declares())["batch_size"] == 7


@pytest.mark.parametrize("value", [0, -1, "5000", True, None])
def test_a_bad_declared_batch_size_is_ignored_with_a_warning_naming_it(value, caplog):
    class Bad:
        runner_defaults = {"batch_size": value}

    with caplog.at_level(logging.WARNING, logger="secbus.config"):
        assert handler_settings(broker_config(), "h", Bad())["batch_size"] == 1000
    assert "handler h runner_defaults.batch_size: expected a positive integer" in caplog.text


def test_a_bad_configured_option_still_stops_the_start_naming_the_key():
    with pytest.raises(ConfigError, match=r"handlers.audit.batch_size: expected a positive integer, got 0"):
        config_mod.check({**broker_config(), "handlers": {**broker_config()["handlers"], "audit": {"batch_size": 0}}})


def test_audit_takes_batches_of_5000_unless_configured(broker_factory):
    b = broker_factory(handlers=["audit", "metrics"])
    health = b.healthz()["handlers"]
    assert health["audit"]["batch_size"] == 5000 and health["metrics"]["batch_size"] == 1000
    b.stop()
    b = broker_factory(config={"handlers": {"audit": {"batch_size": 300}}}, handlers=["audit"])
    assert b.healthz()["handlers"]["audit"]["batch_size"] == 300
