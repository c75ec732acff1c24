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

from . import Usage
from .event_filters import add_field_options, fields_of
from .stored import add_range_options, event_line, open_log, print_listing, range_of

_TYPE_PREFIX = re.compile(r"[a-z0-9_.]+")


def add_parser(sub) -> None:
    p = sub.add_parser("events", help="print stored events by type prefix, tenant, time range, outcome, actor and more")
    p.add_argument("--type", dest="type_prefix", default=None, help="a type or prefix, such as authn. or authn.login")
    p.add_argument("--tenant", default=None, help="only this tenant's events (default: every tenant)")
    add_field_options(p)
    add_range_options(p, "events", "stamped")
    p.set_defaults(run=run)


def _filters(args) -> dict:
    if args.type_prefix is not None and not _TYPE_PREFIX.fullmatch(args.type_prefix):
        raise Usage(f"--type: expected a lowercase type or prefix such as authn. (letters, digits, _ and .), "
                    f"got {args.type_prefix!r}")
    since, until, limit = range_of(args)
    return {"tenant": args.tenant, "type_prefix": args.type_prefix, "since_ns": since, "until_ns": until,
            "limit": limit, "newest": args.newest, "fields": fields_of(args)}


def run(args) -> int:
    filters = _filters(args)
    log = open_log(args)
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
