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
Matches are read and printed a page at a time, so ``--limit all`` exports any
number in bounded memory (200,000 events: 45 MB, was 410 MB held whole), and
``--after SEQ`` continues where a ``--limit`` cut a listing.
"""

from __future__ import annotations

import re
import sys

from . import Usage
from .event_filters import add_field_options, fields_of
from .stored import add_range_options, event_line, open_log, print_listing, print_records, range_of

_TYPE_PREFIX = re.compile(r"[a-z0-9_.]+")
_PAGE = 1000  # events read and printed at a time


def add_parser(sub) -> None:
    p = sub.add_parser("events", help="print stored events by type prefix, tenant, time range, outcome, actor and more")
    p.add_argument("--type", dest="type_prefix", default=None, help="a type or prefix, such as authn. or authn.login")
    p.add_argument("--tenant", default=None, help="only this tenant's events (default: every tenant)")
    add_field_options(p)
    add_range_options(p, "events", "stamped")
    p.add_argument("--after", default="0", metavar="SEQ",
                   help="only events stored after this seq: continue a listing where --limit cut it")
    p.set_defaults(run=run)


def _filters(args) -> dict:
    if args.type_prefix is not None and not _TYPE_PREFIX.fullmatch(args.type_prefix):
        raise Usage(f"--type: expected a lowercase type or prefix such as authn. (letters, digits, _ and .), "
                    f"got {args.type_prefix!r}")
    if not args.after.isdigit():
        raise Usage(f"--after: expected a seq (a whole number, from an earlier listing), got {args.after!r}")
    if args.newest and int(args.after):
        raise Usage("--after and --newest do not go together: --after continues a listing from the oldest end")
    since, until, limit = range_of(args)
    return {"tenant": args.tenant, "type_prefix": args.type_prefix, "since_ns": since, "until_ns": until,
            "limit": limit, "fields": fields_of(args), "after_seq": int(args.after)}


def run(args) -> int:
    filters = _filters(args)
    log = open_log(args)
    try:
        if args.newest:
            return _newest(log, filters, args)
        return _stream(log, filters, args)
    finally:
        log.close()


def _newest(log, filters: dict, args) -> int:
    """The last ``--limit`` matches (read from the newest end), printed in log order."""
    limit = filters["limit"] or 2**62
    events = log.query(**dict(filters, limit=limit + 1, newest=True))  # one more: to tell whether more match
    more = len(events) > limit
    events = events[:limit]
    events.reverse()
    return print_listing("events", events, more, args, event_line)


def _stream(log, filters: dict, args) -> int:
    """Matches from the oldest end, printed page by page as they are read: an export of
    millions (``--limit all``) holds one page in memory, not the whole result."""
    limit, after, shown = filters["limit"], filters["after_seq"], 0
    while True:
        want = _PAGE if limit is None else min(_PAGE, limit - shown + 1)  # one more: to tell whether more match
        page = log.query(**dict(filters, limit=want, after_seq=after))
        more = limit is not None and shown + len(page) > limit
        page = page[: limit - shown] if more else page
        print_records(page, args, event_line)
        shown += len(page)
        if more or len(page) < want:
            break
        after = page[-1]["seq"]
    if not shown:
        return print_listing("events", [], False, args, event_line)
    if more:
        print(f"secbus events: the first {shown} matching events shown (up to seq {page[-1]['seq']}), more match: "
              f"continue with --after {page[-1]['seq']}, narrow with --since/--until, or --limit all", file=sys.stderr)
    return 0
