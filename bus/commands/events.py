"""``secbus events``: stored events by type prefix, tenant, time range and body fields, in log order.

For an analyst's first questions ("every failed login of the last hour", "what
did alice do today", "every check of key k-7"): the log's ``query`` (``type``,
``tenant`` and a range on the event's ``ts``, plus fields of the body) with a
limit.  None of these columns is indexed (indexes on the ingest path cost a
factor of three, ARCHITECTURE.md), so a query reads the events table in log
order until it has ``--limit`` matches: 0.23 s for a million events (442 MB)
with the log in the page cache, measured; longer when it must come from disk.
``--outcome``, the actor, source and attr options are not columns: SQLite keeps
the bodies that hold the value's bytes and those are decoded and tested
(``secbus.log.fields``; 0.77 s for the same million with ``--outcome``).
"""

from __future__ import annotations

import datetime
import re
import sys
import time

from secbus_sdk.event import ATTR_KEY_RE, OUTCOMES, SEVERITIES

from .stored import add_data_dir, data_dir_of, details, iso, open_log, origin, print_json

_AGO = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TYPE_PREFIX = re.compile(r"[a-z0-9_.]+")
# option (argparse dest) -> the body field it compares
_FIELD_OPTIONS = {"actor_user": "actor.user", "actor_ip": "actor.ip", "actor_key_id": "actor.key_id",
                  "actor_session": "actor.session", "service": "source.service", "host": "source.host",
                  "resource": "resource", "reason": "reason", "severity": "severity"}


class Usage(ValueError):
    """A bad option value; the message names the option and the value."""


def add_parser(sub) -> None:
    p = sub.add_parser("events", help="print stored events by type prefix, tenant, time range, outcome, actor and more")
    p.add_argument("--type", dest="type_prefix", default=None, help="a type or prefix, such as authn. or authn.login")
    p.add_argument("--tenant", default=None, help="only this tenant's events (default: every tenant)")
    p.add_argument("--outcome", default=None, help=f"only events with this outcome: {', '.join(OUTCOMES)}")
    p.add_argument("--severity", default=None, help=f"only events with this severity: {', '.join(SEVERITIES)}")
    for option, field in _FIELD_OPTIONS.items():
        if option != "severity":
            p.add_argument("--" + option.replace("_", "-"), default=None, metavar="TEXT", help=f"only events whose {field} is TEXT")
    p.add_argument("--attr", action="append", default=[], metavar="KEY=VALUE",
                   help="only events with this attribute (repeatable; numbers and true/false compare as written)")
    p.add_argument("--since", default=None, help="events stamped at or after: 15m, 2h, 1d ago, or an ISO 8601 time")
    p.add_argument("--until", default=None, help="events stamped before: same forms as --since")
    p.add_argument("--limit", default="100", help="at most this many events, the oldest first (default 100)")
    p.add_argument("--newest", action="store_true", help="the most recent --limit events instead (still printed oldest first)")
    add_data_dir(p)
    p.add_argument("--json", action="store_true", help="one JSON object per event and line, as stored")
    p.set_defaults(run=run)


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


def _filters(args) -> dict:
    if args.type_prefix is not None and not _TYPE_PREFIX.fullmatch(args.type_prefix):
        raise Usage(f"--type: expected a lowercase type or prefix such as authn. (letters, digits, _ and .), "
                    f"got {args.type_prefix!r}")
    if args.outcome is not None and args.outcome not in OUTCOMES:
        raise Usage(f"--outcome: expected one of {', '.join(OUTCOMES)}, got {args.outcome!r}")
    if args.severity is not None and args.severity not in SEVERITIES:
        raise Usage(f"--severity: expected one of {', '.join(SEVERITIES)}, got {args.severity!r}")
    if not args.limit.isdigit() or int(args.limit) < 1:
        raise Usage(f"--limit: expected a positive integer, got {args.limit!r}")
    now_ns = time.time_ns()
    since = None if args.since is None else parse_when(args.since, "--since", now_ns)
    until = None if args.until is None else parse_when(args.until, "--until", now_ns)
    if since is not None and until is not None and since >= until:
        raise Usage(f"--since {args.since!r} is not before --until {args.until!r}")
    return {"tenant": args.tenant, "type_prefix": args.type_prefix, "since_ns": since, "until_ns": until,
            "limit": int(args.limit), "outcome": args.outcome, "newest": args.newest, "fields": _body_fields(args)}


def _body_fields(args) -> dict[str, str]:
    """The body fields the options ask for (``secbus.log.fields`` paths)."""
    fields = {field: getattr(args, option) for option, field in _FIELD_OPTIONS.items()
              if getattr(args, option) is not None}
    for attr in args.attr:
        key, equals, value = attr.partition("=")
        if not equals or not ATTR_KEY_RE.fullmatch(key):
            raise Usage(f"--attr: expected KEY=VALUE, KEY a letter or _ then letters, digits, _ . : -, got {attr!r}")
        fields["attrs." + key] = value
    return fields


def run(args) -> int:
    try:
        filters = _filters(args)
    except Usage as exc:
        print(f"secbus events: {exc}", file=sys.stderr)
        return 2
    log = open_log(args, "events")
    if log is None:
        return 2
    limit = filters["limit"]
    try:
        events = log.query(**dict(filters, limit=limit + 1))  # one more: to tell whether more match
    finally:
        log.close()
    if not events:
        print(f"secbus events: no stored events match in {data_dir_of(args)}", file=sys.stderr)
        return 1
    more = len(events) > limit
    events = events[:limit]
    if args.newest:
        events.reverse()  # read newest first; printed in log order like the rest
    if args.json:
        print_json(events)
    else:
        for e in events:
            print(f"{iso(e['ts'])}  {e.get('tenant', '?')}  {origin(e)}  {e['type']}  {e['outcome']}  "
                  f"trace={e['trace_id']}  seq={e['seq']}{details(e)}")
    if more:
        which = "last" if args.newest else "first"
        print(f"secbus events: the {which} {limit} matching events shown, more match: narrow with --since/--until "
              f"or raise --limit", file=sys.stderr)
    return 0
