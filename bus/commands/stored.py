"""What ``secbus trace`` and ``secbus events`` share: opening the log read-only and printing stored events.

Both read the event log directly (WAL lets them read beside a running broker)
from ``--data-dir``, else ``$SECBUS_DATA_DIR``, else ``./secbus-data``.
"""

from __future__ import annotations

import datetime
import json
import os
import sys

from ..log.sqlite import LogMissing, SqliteLog


def add_data_dir(parser) -> None:
    parser.add_argument("--data-dir", default=None, help="the broker's data dir (default $SECBUS_DATA_DIR or ./secbus-data)")


def open_log(args, command: str) -> SqliteLog | None:
    """The log in the chosen data dir, or ``None`` after saying on stderr why there is none."""
    data_dir = data_dir_of(args)
    try:
        return SqliteLog(data_dir, create=False)
    except LogMissing as exc:
        print(f"secbus {command}: {exc}", file=sys.stderr)
        return None


def data_dir_of(args) -> str:
    return args.data_dir or os.environ.get("SECBUS_DATA_DIR", "./secbus-data")


def iso(ns: int) -> str:
    """``2026-12-07T19:50:05.070934Z`` for a time in ns since the epoch."""
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def details(event: dict) -> str:
    """The actor's user and the reason, when the event has them."""
    user = (event.get("actor") or {}).get("user")
    out = f"  user={user}" if user else ""
    if event.get("reason"):
        out += f"  reason={event['reason']}"
    return out


def origin(event: dict) -> str:
    source = event.get("source") or {}
    return f"{source.get('platform', '?')}/{source.get('service', '?')}"


def print_json(events: list[dict]) -> None:
    """One JSON object per event and line, as stored."""
    for event in events:
        print(json.dumps(event, sort_keys=True))
