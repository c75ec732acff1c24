"""What ``secbus trace``, ``events`` and ``alerts`` share: opening the log read-only, the time-range
and limit options, and printing stored records.

They read the event log directly (WAL lets them read beside a running broker)
from ``--data-dir``, else ``$SECBUS_DATA_DIR``, else ``./secbus-data``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
import time

from ..log.sqlite import LogMissing, LogUnusable, SqliteLog
from . import Usage


_AGO = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_range_options(parser: argparse.ArgumentParser, records: str, stamp: str) -> None:
    """``--since``/``--until``/``--limit``/``--newest``, ``--data-dir`` and ``--json`` for a listing of ``records``."""
    parser.add_argument("--since", default=None, help=f"{records} {stamp} at or after: 15m, 2h, 1d ago, or an ISO 8601 time")
    parser.add_argument("--until", default=None, help=f"{records} {stamp} before: same forms as --since")
    parser.add_argument("--limit", default="100", help=f"at most this many {records}, the oldest first (default 100); "
                                                       f"all: every match")
    parser.add_argument("--newest", action="store_true", help=f"the most recent --limit {records} instead (still printed oldest first)")
    add_data_dir(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per line, as stored")


def range_of(args) -> tuple[int | None, int | None, int | None]:
    """``(since_ns, until_ns, limit)`` from the range options; :class:`Usage` names a bad one.
    ``--limit all`` gives a limit of None (every match)."""
    unbounded = args.limit == "all"
    if not unbounded and (not args.limit.isdigit() or int(args.limit) < 1):
        raise Usage(f"--limit: expected a positive integer or all, got {args.limit!r}")
    now_ns = time.time_ns()
    since = None if args.since is None else parse_when(args.since, "--since", now_ns)
    until = None if args.until is None else parse_when(args.until, "--until", now_ns)
    if since is not None and until is not None and since >= until:
        raise Usage(f"--since {args.since!r} is not before --until {args.until!r}")
    return since, until, None if unbounded else int(args.limit)


def parse_when(value: str, option: str, now_ns: int) -> int:
    """ns since the epoch for ``15m``/``2h``/``1d`` (that long before ``now_ns``) or an ISO 8601
    time (UTC when it names no zone)."""
    text = value.strip()
    ago = _AGO.fullmatch(text)
    if ago:
        return now_ns - int(float(ago[1]) * _SECONDS[ago[2]] * 1_000_000_000)
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise Usage(f"{option}: expected a time ago such as 15m, 2h or 1d, or an ISO 8601 time such as "
                    f"2026-12-07T19:00:00Z, got {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    delta = when - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def add_data_dir(parser) -> None:
    parser.add_argument("--data-dir", default=None, help="the broker's data dir (default $SECBUS_DATA_DIR or ./secbus-data)")


def open_log(args) -> SqliteLog:
    """The log in the chosen data dir; :class:`Usage` says why there is none."""
    try:
        return SqliteLog(data_dir_of(args), create=False)
    except (LogMissing, LogUnusable) as exc:
        raise Usage(str(exc)) from None


def data_dir_of(args) -> str:
    return args.data_dir or os.environ.get("SECBUS_DATA_DIR", "./secbus-data")


def iso(ns: int) -> str:
    """``2026-12-07T19:50:05.070934Z`` for a time in ns since the epoch."""
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def details(event: dict) -> str:
    """The actor's user and ip, the resource and the reason, when the event has them."""
    actor = event.get("actor") or {}
    pairs = (("user", actor.get("user")), ("ip", actor.get("ip")), ("resource", event.get("resource")),
             ("reason", event.get("reason")))
    return "".join(f"  {name}={value}" for name, value in pairs if value)


def event_line(event: dict) -> str:
    """One stored event for people: time, tenant, platform/service, type, outcome, trace, seq, :func:`details`."""
    return (f"{iso(event['ts'])}  {event.get('tenant', '?')}  {origin(event)}  {event['type']}  {event['outcome']}  "
            f"trace={event['trace_id']}  seq={event['seq']}{details(event)}")


def print_listing(command: str, found: list[dict], more: bool, args, line) -> int:
    """Print what ``secbus events``/``alerts`` found (``line`` renders one record for people, ``--json``
    prints them as stored) and say on stderr when nothing matched or ``--limit`` cut the rest.
    The exit status: 0 found, 1 none."""
    if not found:
        print(f"secbus {command}: no stored {command} match in {data_dir_of(args)}", file=sys.stderr)
        return 1
    print_records(found, args, line)
    if more:
        print(f"secbus {command}: the {'last' if args.newest else 'first'} {len(found)} matching {command} shown, "
              f"more match: narrow with --since/--until, raise --limit, or --limit all", file=sys.stderr)
    return 0


def print_records(records: list[dict], args, line) -> None:
    """Each record as ``line`` renders it, or with ``--json`` as stored."""
    if args.json:
        print_json(records)
    else:
        for record in records:
            print(line(record))


def origin(event: dict) -> str:
    source = event.get("source") or {}
    return f"{source.get('platform', '?')}/{source.get('service', '?')}"


def print_json(events: list[dict]) -> None:
    """One JSON object per event and line, as stored."""
    for event in events:
        print(json.dumps(event, sort_keys=True))
