"""``secbus trace``: every stored event of a trace, in time order, with its platforms.

Reads the event log directly (WAL lets it read beside a running broker):
closed traces through the indexed traces stream, events of still-open
traces from the range the correlator has not closed yet.
"""

from __future__ import annotations

import datetime
import json
import os
import sys

from secbus_sdk.event import TRACE_ID_RE

from ..log.sqlite import LogMissing, SqliteLog


def add_parser(sub) -> None:
    p = sub.add_parser("trace", help="print every stored event of a trace")
    p.add_argument("trace_id", help="32 lowercase hex characters")
    p.add_argument("--data-dir", default=None, help="the broker's data dir (default $SECBUS_DATA_DIR or ./secbus-data)")
    p.add_argument("--tenant", default=None, help="only this tenant's events (default: every tenant)")
    p.add_argument("--json", action="store_true", help="one JSON object per event and line, as stored")
    p.set_defaults(run=run)


def _iso(ns: int) -> str:
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def run(args) -> int:
    trace_id = args.trace_id.strip()
    if not TRACE_ID_RE.fullmatch(trace_id):
        print(f"secbus trace: trace_id: expected 32 lowercase hex characters, got {trace_id!r}", file=sys.stderr)
        return 2
    data_dir = args.data_dir or os.environ.get("SECBUS_DATA_DIR", "./secbus-data")
    try:
        log = SqliteLog(data_dir, create=False)
    except LogMissing as exc:
        print(f"secbus trace: {exc}", file=sys.stderr)
        return 2
    try:
        open_after = log.get_cursor("correlator", "events") or 0
        events = log.trace(args.tenant, trace_id, open_after=open_after)
    finally:
        log.close()
    if not events:
        print(f"secbus trace: no stored events for trace {trace_id} in {data_dir}", file=sys.stderr)
        return 1
    if args.json:
        for event in events:
            print(json.dumps(event, sort_keys=True))
        return 0
    platforms = sorted({(e.get("source") or {}).get("platform", "?") for e in events})
    services = sorted({(e.get("source") or {}).get("service", "?") for e in events})
    tenants = sorted({e.get("tenant", "?") for e in events})
    outcomes = sorted({e.get("outcome", "?") for e in events})
    print(f"trace {trace_id}: {len(events)} events; tenant {', '.join(tenants)}; platforms {', '.join(platforms)}; "
          f"services {', '.join(services)}; outcomes {', '.join(outcomes)}")
    for e in events:
        source = e.get("source") or {}
        actor = (e.get("actor") or {}).get("user")
        extra = f"  user={actor}" if actor else ""
        if e.get("reason"):
            extra += f"  reason={e['reason']}"
        print(f"  {_iso(e['ts'])}  {source.get('platform', '?')}/{source.get('service', '?')}  {e['type']}  {e['outcome']}  span={e['span_id']}  seq={e['seq']}{extra}")
    return 0
