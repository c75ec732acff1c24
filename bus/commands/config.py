"""``secbus config show|check``: the broker's effective configuration, and a check before a restart.

Both take ``serve``'s options and build the config exactly as ``serve`` would
(defaults < file < ``SECBUS_*`` environment < flags).

* ``show`` prints it as TOML (a file ``serve --config`` accepts); ``--sources``
  prints one line per setting instead, with where its value came from.  Secrets
  are masked as ``secbus.shown`` says (secret-named keys, headers, URLs), so the
  output can be pasted into a ticket.
* ``check`` runs what ``serve`` checks before it binds anything: the config, the
  CURVE key file and allow-list, the loopback rule for each listener, every
  enabled handler resolved through its entry point, and the ``[handlers.<name>]``
  table of each handler that offers ``check_settings(name, settings, data_dir)``
  (every built-in does: types, unknown keys, the alerting rules file), and the
  data dir (:mod:`.data_dir_check`: a directory this user can write, a readable
  log, the space left).  Such a
  check reads its settings and files without opening anything for writing; a
  handler without one is checked when it starts (the broker log and
  ``/healthz`` name the problem).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, Iterator, Mapping

import tomli_w

from ..config import DEFAULTS, RUNNER_KEYS, ConfigError, data_dir_of, env_names, handler_settings, layers, load
from ..shown import shown_setting
from .data_dir_check import check_data_dir
from .serve import add_config_options, flags_of


def add_parser(sub) -> None:
    p = sub.add_parser("config", help="show the effective config, or check it before a restart")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="print the config serve would run with, as TOML (secrets masked)")
    add_config_options(show)
    show.add_argument("--sources", action="store_true", help="one line per setting with where its value came from")
    show.set_defaults(run=run_show)
    check = actions.add_parser("check", help="check the config, keys, binds and handlers as serve would; exit 0 when ready")
    add_config_options(check)
    check.set_defaults(run=run_check)


def _load(args, command: str) -> dict | None:
    try:
        return load(args.config, flags=flags_of(args))
    except ConfigError as exc:
        print(f"secbus config {command}: config error: {exc}", file=sys.stderr)
        return None


def run_show(args) -> int:
    config = _load(args, "show")
    if config is None:
        return 2
    path = config.pop("config_path")
    shown = shown_setting("", config)
    if not args.sources:
        sys.stdout.write(tomli_w.dumps(shown))
        return 0
    sources = sources_of(path, args)
    for key, value in leaves(shown):
        print(f"{key} = {json.dumps(value)}  # {sources.get(key, 'default')}")
    return 0


def run_check(args) -> int:
    from ..auth.binding import InsecureBindError
    from ..auth.security import Security, SecurityError
    from ..consumers.plugins import plugin_manager

    config = _load(args, "check")
    if config is None:
        return 2
    problems: list[str] = []
    try:
        security = Security.from_config(config)
        notes = security.check_binds(config["ingest"]["endpoint"], config["feed"]["endpoint"], config["http"]["address"])
    except (SecurityError, InsecureBindError) as exc:
        problems.append(str(exc))
        notes = []
    logging.disable(logging.ERROR)  # plugin_manager logs what it skips; said once below instead
    try:
        _pm, plugins, skipped = plugin_manager(config["handlers"]["enabled"])
    finally:
        logging.disable(logging.NOTSET)
    problems += [f"handler {name!r}: {why}" for name, why in skipped.items()]
    setting_problems, unchecked = check_handler_settings(config, plugins)
    problems += setting_problems
    data_dir = data_dir_of(config).resolve()
    dir_problems, dir_notes, free = check_data_dir(data_dir)
    problems += dir_problems
    notes += dir_notes
    for note in notes:
        print(f"secbus config check: {note}")
    if problems:
        for problem in problems:
            print(f"secbus config check: {problem}", file=sys.stderr)
        return 2
    later = f" ({', '.join(unchecked)}: own settings checked when they start)" if unchecked else ""
    print(f"secbus config check: OK: config {config['config_path'] or '(none: defaults and environment)'}; "
          f"data in {data_dir} ({free}); handlers {', '.join(plugins) or 'none'}{later}")
    return 0


def check_handler_settings(config: dict, plugins: Mapping[str, object]) -> tuple[list[str], list[str]]:
    """(problems, handlers without a check): each enabled handler's ``check_settings`` on its
    table, as ``serve`` would pass it."""
    data_dir = data_dir_of(config).resolve()
    problems: list[str] = []
    unchecked: list[str] = []
    for name, plugin in plugins.items():
        check = getattr(plugin, "check_settings", None)
        if not callable(check):
            unchecked.append(name)
            continue
        settings = {k: v for k, v in handler_settings(config, name, plugin).items() if k not in RUNNER_KEYS}
        try:
            check(name, settings, data_dir)
        except Exception as exc:  # a handler's own check: whatever it raises names the problem
            problems.append(f"handler {name!r}: {exc}")
    return problems, sorted(unchecked)


def leaves(config: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted.key, value)`` for every setting; an array of tables (``auth.clients``) is one."""
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def sources_of(path: str | None, args) -> dict[str, str]:
    """Where each setting that is not a default came from: the file, a variable, a flag."""
    env = {key: name for key, name, _default in env_names(DEFAULTS)}
    out: dict[str, str] = {}
    for source, values in layers(path, os.environ, flags_of(args)):
        for key, _value in leaves(values):
            out[key] = {"file": f"file {path}", "environment": f"environment {env.get(key, '')}".rstrip(),
                        "flags": "command line"}[source]
    return out
