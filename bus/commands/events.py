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

import re
import sys

from secbus_sdk.event import ATTR_KEY_RE, OUTCOMES, SEVERITIES

from .stored import Usage, add_range_options, event_line, open_log, print_listing, range_of

_TYPE_PREFIX = re.compile(r"[a-z0-9_.]+")
# option (argparse dest) -> the body field it compares
_FIELD_OPTIONS = {"actor_user": "actor.user", "actor_ip": "actor.ip", "actor_key_id": "actor.key_id",
                  "actor_session": "actor.session", "service": "source.service", "host": "source.host",
                  "resource": "resource", "reason": "reason", "severity": "severity"}


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
    add_range_options(p, "events", "stamped")
    p.set_defaults(run=run)


def _filters(args) -> dict:
    if args.type_prefix is not None and not _TYPE_PREFIX.fullmatch(args.type_prefix):
        raise Usage(f"--type: expected a lowercase type or prefix such as authn. (letters, digits, _ and .), "
                    f"got {args.type_prefix!r}")
    if args.outcome is not None and args.outcome not in OUTCOMES:
        raise Usage(f"--outcome: expected one of {', '.join(OUTCOMES)}, got {args.outcome!r}")
    if args.severity is not None and args.severity not in SEVERITIES:
        raise Usage(f"--severity: expected one of {', '.join(SEVERITIES)}, got {args.severity!r}")
    since, until, limit = range_of(args)
    return {"tenant": args.tenant, "type_prefix": args.type_prefix, "since_ns": since, "until_ns": until,
            "limit": limit, "outcome": args.outcome, "newest": args.newest, "fields": _body_fields(args)}


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
    more = len(events) > limit
    events = events[:limit]
    if args.newest:
        events.reverse()  # read newest first; printed in log order like the rest
    return print_listing("events", events, more, args, event_line)
