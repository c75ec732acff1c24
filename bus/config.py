"""Broker configuration: embedded defaults, a TOML file, ``SECBUS_*`` variables, CLI flags.

Precedence, lowest first: the defaults in :data:`DEFAULTS`, the TOML file
(``--config FILE`` or ``SECBUS_CONFIG``), environment variables, command-line
flags.  Every option has a default, so ``secbus serve`` runs with no file at
all.  Every scalar or list option ``[section] key`` has the environment
variable ``SECBUS_SECTION_KEY`` (top-level keys: ``SECBUS_KEY``); lists are
comma-separated.  Per-handler tables ``[handlers.<name>]`` are free-form and
come from the file only.

Unknown keys and wrong types are errors that name the key and the value:
a typo in a config file must not silently fall back to a default.
"""

from __future__ import annotations

import copy
import logging
import os
import tomllib
from pathlib import Path
from typing import Any, Mapping

from secbus_sdk.wire import DEFAULT_LIMITS, Limits

from .ingest.redact import DEFAULT_SECRET_WORDS
from .shown import shown_setting

#: The embedded defaults; docs/operations.md documents every key.
DEFAULTS: dict[str, Any] = {
    "data_dir": "./secbus-data",
    "ingest": {
        "endpoint": "tcp://127.0.0.1:7878",
        # Unconsumed events behind the slowest `block` cursor before PUB gets ERR overloaded.
        "max_backlog": 2_000_000,
        "retry_after_ms": 200,
        # Group commit: at most this many requests are drained from the ROUTER into one transaction.
        "max_group_requests": 64,
        "max_group_events": 20_000,
        # Events per second per publisher (token bucket; ERR overloaded + retry_after_ms); 0 = off.
        "rate_per_publisher": 0,
        # Bucket depth; 0 = max(rate_per_publisher, limits.max_batch_events).
        "rate_burst": 0,
        # attrs keys containing one of these words (case-insensitive) have their value
        # replaced by "[redacted]" before anything is stored; [] turns redaction off.
        "redact_keys": list(DEFAULT_SECRET_WORDS),
    },
    "feed": {
        "endpoint": "tcp://127.0.0.1:7879",
        # Messages queued per subscriber before ZeroMQ drops for that subscriber (the feed is live, not durable).
        "sndhwm": 10_000,
        # The feed skips ahead (counted) when more than this many records behind.
        "max_lag": 100_000,
    },
    "http": {
        "address": "127.0.0.1:7880",
        # Bearer token for every path but /healthz; "" = none (then HTTP binds loopback only).
        "token": "",
    },
    # CURVE, the client allow-list and the loopback rule: docs/security.md, secbus.auth.
    "auth": {
        "server_secret_key_file": "",
        "allow_insecure": False,
        "clients": [],  # [[auth.clients]] tables, checked by secbus.auth.allowlist
    },
    "log": {
        # "normal": WAL + synchronous=NORMAL, durable against a process crash (kill -9).
        # "fsync": WAL + synchronous=FULL, each commit fsynced, durable against power loss.
        "durability": "normal",
        "retention_max_age_s": 7 * 24 * 3600,
        "retention_max_bytes": 10 * 1024**3,
        "retention_interval_s": 30.0,
    },
    "limits": {name: getattr(DEFAULT_LIMITS, name) for name in Limits.__dataclass_fields__},
    "correlation": {
        "trace_idle_ms": 5_000,
        # Open traces live in memory, their events kept as msgpack: about
        # (events per trace x the event's encoded size + ~40 B) + ~1 KB each.
        "max_open_traces": 20_000,
        "max_trace_events": 1000,
        "expire_interval_ms": 250,
    },
    "handlers": {
        "enabled": ["audit", "metrics", "alerting", "alert-log"],
        "shutdown_deadline_s": 10.0,
        # Added to the consumer process's nice value: ingest (and the applications
        # on the same host) get the CPU first, handlers catch up with what is left.
        "niceness": 10,
        # Defaults for every handler's runner; override per handler in [handlers.<name>].
        "lag_policy": "block",
        "max_lag": 1_000_000,
        "batch_size": 1000,
    },
}

#: Keys of [handlers.<name>] that the broker itself reads; the rest go to app.settings too.
RUNNER_KEYS = ("lag_policy", "max_lag", "batch_size")
LAG_POLICIES = ("block", "drop")
DURABILITY = ("normal", "fsync")


class ConfigError(ValueError):
    """A config value that cannot be used; the message names the key and the value."""


def _check_type(path: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, list):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:  # pragma: no cover - defaults only hold the types above
        ok = True
    if not ok:  # named, with a secret masked (a token of the wrong type is still a token)
        raise ConfigError(f"{path}: expected {type(default).__name__}, got {shown_setting(path.rpartition('.')[2], value)!r}")
    return value


def _merge(base: dict, override: Mapping[str, Any], prefix: str = "") -> None:
    for key, value in override.items():
        path = f"{prefix}{key}"
        if path == "auth.clients":  # an array of tables, checked by secbus.auth.allowlist
            base[key] = value
            continue
        if prefix == "handlers." and isinstance(value, dict):
            base[key] = {**base.get(key, {}), **value}  # a [handlers.<name>] table
            continue
        if key not in base:
            raise ConfigError(f"{path}: unknown option (known: {', '.join(sorted(base))})")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: expected a table, got {value!r}")
            _merge(base[key], value, path + ".")
        else:
            base[key] = _check_type(path, value, base[key])


def _parse_env(name: str, text: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError
            return text.lower() in ("1", "true", "yes")
        if isinstance(default, int):
            return int(text.replace("_", ""))
        if isinstance(default, float):
            return float(text)
        if isinstance(default, list):
            return [item.strip() for item in text.split(",") if item.strip()]
    except ValueError:
        raise ConfigError(f"{name}: expected {type(default).__name__}, got {text!r}") from None
    return text


def env_overrides(environ: Mapping[str, str], defaults: Mapping[str, Any] = DEFAULTS) -> dict:
    """The ``SECBUS_*`` variables that name a known option, as a nested dict."""
    out: dict[str, Any] = {}
    for key, default in defaults.items():
        if isinstance(default, dict):
            for sub, sub_default in default.items():
                if isinstance(sub_default, dict):
                    continue
                name = f"SECBUS_{key}_{sub}".upper()
                if name in environ:
                    out.setdefault(key, {})[sub] = _parse_env(name, environ[name], sub_default)
        else:
            name = f"SECBUS_{key}".upper()
            if name in environ:
                out[key] = _parse_env(name, environ[name], default)
    return out


def env_names(defaults: Mapping[str, Any] = DEFAULTS) -> list[tuple[str, str, Any]]:
    """(dotted key, environment variable, default) for every option: the docs table."""
    rows = []
    for key, default in defaults.items():
        if isinstance(default, dict):
            for sub, sub_default in default.items():
                rows.append((f"{key}.{sub}", f"SECBUS_{key}_{sub}".upper(), sub_default))
        else:
            rows.append((key, f"SECBUS_{key}".upper(), default))
    return rows


def load(
    path: str | os.PathLike | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> dict:
    """Build the effective config: defaults < file < environment < flags.

    ``flags`` is a nested dict like the file (only the keys given on the
    command line).  Raises :class:`ConfigError` naming the bad key."""
    environ = os.environ if environ is None else environ
    path = path or environ.get("SECBUS_CONFIG")
    config = copy.deepcopy(DEFAULTS)
    for _source, values in layers(path, environ, flags):
        _merge(config, values)
    check(config)
    config["config_path"] = str(path) if path else None
    return config


def layers(path: str | os.PathLike | None, environ: Mapping[str, str], flags: Mapping[str, Any] | None) -> list[tuple[str, dict]]:
    """What each source sets over the defaults, lowest precedence first: ``("file", ...)``,
    ``("environment", ...)``, ``("flags", ...)`` (nested dicts like the file)."""
    out: list[tuple[str, dict]] = []
    if path:
        try:
            with open(path, "rb") as fh:
                out.append(("file", tomllib.load(fh)))
        except FileNotFoundError:
            raise ConfigError(f"config file {path}: not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: not valid TOML ({exc})") from None
    out.append(("environment", env_overrides(environ)))
    if flags:
        out.append(("flags", dict(flags)))
    return out


def check(config: Mapping[str, Any]) -> None:
    """Cross-field checks that a type check cannot make."""
    if config["log"]["durability"] not in DURABILITY:
        raise ConfigError(f"log.durability: expected one of {', '.join(DURABILITY)}, got {config['log']['durability']!r}")
    handlers = config["handlers"]
    for name in ["handlers"] + [n for n, v in handlers.items() if isinstance(v, dict)]:
        table = handlers if name == "handlers" else handlers[name]
        where = "handlers" if name == "handlers" else f"handlers.{name}"
        for key in RUNNER_KEYS:
            if key in table:
                check_runner_option(where, key, table[key])
    if not 0 <= handlers["niceness"] <= 19:
        raise ConfigError(f"handlers.niceness: expected 0 to 19, got {handlers['niceness']!r}")
    for key, value in config["limits"].items():
        if value < 1:
            raise ConfigError(f"limits.{key}: expected a positive integer, got {value!r}")
    for key in ("max_backlog", "retry_after_ms", "max_group_requests", "max_group_events"):
        if config["ingest"][key] < 1:
            raise ConfigError(f"ingest.{key}: expected a positive integer, got {config['ingest'][key]!r}")
    for key in ("ingest", "feed"):
        endpoint = config[key]["endpoint"]
        scheme, _, rest = endpoint.partition("://")
        port = rest.rpartition(":")[2]
        if not ((scheme == "tcp" and ":" in rest and (port.isdigit() or port == "*")) or (scheme == "ipc" and rest)):
            raise ConfigError(f"{key}.endpoint: expected tcp://HOST:PORT or ipc://PATH, got {endpoint!r}")
    host, _, port = config["http"]["address"].rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"http.address: expected HOST:PORT, got {config['http']['address']!r}")


def handler_settings(config: Mapping[str, Any], name: str, plugin: object = None) -> dict:
    """The merged runner options and settings of one handler.

    Each runner option comes from ``[handlers.<name>]``, else the plugin's own
    ``runner_defaults`` (a handler that knows it needs larger batches, as audit
    does), else ``[handlers]``.  A plugin's default that is not a valid option
    value is ignored with a warning, never trusted."""
    handlers = config["handlers"]
    table = dict(handlers.get(name, {})) if isinstance(handlers.get(name), dict) else {}
    declared = getattr(plugin, "runner_defaults", None)
    for key, value in (declared.items() if isinstance(declared, Mapping) else ()):
        if key in RUNNER_KEYS and key not in table:
            try:
                check_runner_option(f"handler {name} runner_defaults", key, value)
            except ConfigError as exc:
                logging.getLogger("secbus.config").warning("%s; using the broker's default", exc)
            else:
                table[key] = value
    for key in RUNNER_KEYS:
        table.setdefault(key, handlers[key])
    return table


def check_runner_option(where: str, key: str, value: Any) -> None:
    """``lag_policy`` one of LAG_POLICIES; ``max_lag`` and ``batch_size`` positive integers."""
    if key == "lag_policy":
        if value not in LAG_POLICIES:
            raise ConfigError(f"{where}.lag_policy: expected one of {', '.join(LAG_POLICIES)}, got {value!r}")
    elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where}.{key}: expected a positive integer, got {value!r}")


def limits_of(config: Mapping[str, Any]) -> Limits:
    return DEFAULT_LIMITS.with_overrides(config["limits"])


def data_dir_of(config: Mapping[str, Any]) -> Path:
    return Path(config["data_dir"]).expanduser()
