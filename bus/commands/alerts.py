"""``secbus alerts``: stored alerts, and one alert with the events that raised it.

For the analyst's morning question ("what fired overnight?") and the next one
("show me that alert's events").  Alerts live in the log's alerts stream, so
this works whether or not an output handler (alert-log, alert-file...) kept a
copy.  Suppression keeps alerts few (one per rule and group per window,
docs/alerting.md), so the stream is read in log order and filtered here; the
time range is on when the alert was raised (``time_ns``); an alert's tenant is the
one the live feed gives it (that of all its events, ``secbus.auth.feed``).  An alert names its
triggering events by log offset (``seqs``, the last 100 by default): each is
read back by its offset; one past retention is reported as gone.
"""

from __future__ import annotations

import collections
import re
import sys

from secbus_sdk.event import SEVERITIES, SEVERITY_RANK

from ..auth.feed import tenant_of_alert
from . import Usage
from .stored import add_range_options, data_dir_of, event_line, iso, open_log, print_json, print_listing, range_of

_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PAGE = 1000


def add_parser(sub) -> None:
    p = sub.add_parser("alerts", help="print stored alerts, or one alert and the events that raised it")
    p.add_argument("alert_id", nargs="?", default=None, help="an alert's id: print it and its triggering events")
    p.add_argument("--rule", default=None, help="only this rule's alerts")
    p.add_argument("--tenant", default=None, help="only alerts about this tenant's events (as the live feed assigns them)")
    p.add_argument("--min-severity", default=None, help=f"only alerts at least this severe: {', '.join(SEVERITIES)}")
    add_range_options(p, "alerts", "raised")
    p.set_defaults(run=run)


def run(args) -> int:
    since, until, limit = range_of(args)
    if args.min_severity is not None and args.min_severity not in SEVERITY_RANK:
        raise Usage(f"--min-severity: expected one of {', '.join(SEVERITIES)}, got {args.min_severity!r}")
    if args.alert_id is not None and not _ID.fullmatch(args.alert_id):
        raise Usage(f"alert_id: expected a UUID in lowercase hex, got {args.alert_id!r}")
    log = open_log(args)
    try:
        if args.alert_id is not None:
            return _show_one(log, args)
        floor = SEVERITY_RANK.get(args.min_severity, 0)

        def wanted(alert: dict) -> bool:
            raised = alert.get("time_ns", 0)
            return ((args.rule is None or alert.get("rule") == args.rule)
                    and SEVERITY_RANK.get(alert.get("severity"), 0) >= floor
                    and (since is None or raised >= since) and (until is None or raised < until)
                    and (args.tenant is None or tenant_of_alert(alert, lambda seq: _event_at(log, seq)) == args.tenant))

        found, more = _matching(log, wanted, limit, args.newest)
    finally:
        log.close()
    return print_listing("alerts", found, more, args, _line)


def _matching(log, wanted, limit: int | None, newest: bool) -> tuple[list[dict], bool]:
    """The first (or last) ``limit`` alerts ``wanted`` accepts (every one: None), in log order, and
    whether more match."""
    kept: collections.deque = collections.deque(maxlen=limit if newest else None)
    matched = 0
    after = 0
    while True:
        page = log.read("alerts", after, _PAGE)
        for alert in page:
            if wanted(alert):
                matched += 1
                if newest or limit is None or len(kept) < limit:
                    kept.append(alert)
                else:
                    return list(kept), True
        if len(page) < _PAGE:
            return list(kept), limit is not None and matched > limit
        after = page[-1]["seq"]


def _show_one(log, args) -> int:
    alert = next(iter(_matching(log, lambda a: a.get("id") == args.alert_id, 1, False)[0]), None)
    if alert is None:
        print(f"secbus alerts: no stored alert {args.alert_id} in {data_dir_of(args)}", file=sys.stderr)
        return 1
    events, gone = [], []
    for seq in alert.get("seqs") or []:
        event = _event_at(log, seq)
        if event is not None:
            events.append(event)
        else:
            gone.append(seq)
    if args.json:
        print_json([dict(alert, events=events)])
    else:
        print(_line(alert))
        print(f"  group {alert.get('group') or '-'}; {alert.get('count')} event(s), {alert.get('suppressed', 0)} suppressed; "
              f"traces {', '.join(alert.get('trace_ids') or []) or '-'}")
        for e in events:
            print("  " + event_line(e))
    if gone:
        print(f"secbus alerts: {len(gone)} triggering event(s) are no longer in the log (retention): "
              f"seq {', '.join(map(str, gone))}", file=sys.stderr)
    return 0


def _event_at(log, seq: int) -> dict | None:
    """The stored event at offset ``seq``, or ``None`` when retention removed it."""
    (event,) = log.read("events", seq - 1, 1) or [None]
    return event if event is not None and event["seq"] == seq else None


def _line(alert: dict) -> str:
    return (f"{iso(alert.get('time_ns', 0))}  {str(alert.get('severity', '?')).upper()}  {alert.get('rule', '?')}  "
            f"{alert.get('summary', '')}  id={alert.get('id')}  seq={alert.get('seq')}")
