"""``secbus trace``: every stored event of a trace, in time order, with its platforms.

Closed traces are found through the indexed traces stream, events of
still-open traces in the range the correlator has not closed yet.
"""

from __future__ import annotations

import sys

from secbus_sdk.event import TRACE_ID_RE

from . import Usage
from .stored import add_data_dir, data_dir_of, details, iso, open_log, origin, print_json


def add_parser(sub) -> None:
    p = sub.add_parser("trace", help="print every stored event of a trace")
    p.add_argument("trace_id", help="32 lowercase hex characters")
    add_data_dir(p)
    p.add_argument("--tenant", default=None, help="only this tenant's events (default: every tenant)")
    p.add_argument("--json", action="store_true", help="one JSON object per event and line, as stored")
    p.set_defaults(run=run)


def run(args) -> int:
    trace_id = args.trace_id.strip()
    if not TRACE_ID_RE.fullmatch(trace_id):
        raise Usage(f"trace_id: expected 32 lowercase hex characters, got {trace_id!r}")
    log = open_log(args)
    try:
        open_after = log.get_cursor("correlator", "events") or 0
        events = log.trace(args.tenant, trace_id, open_after=open_after)
    finally:
        log.close()
    if not events:
        print(f"secbus trace: no stored events for trace {trace_id} in {data_dir_of(args)}", file=sys.stderr)
        return 1
    if args.json:
        print_json(events)
        return 0
    platforms = sorted({(e.get("source") or {}).get("platform", "?") for e in events})
    services = sorted({(e.get("source") or {}).get("service", "?") for e in events})
    tenants = sorted({e.get("tenant", "?") for e in events})
    outcomes = sorted({e.get("outcome", "?") for e in events})
    print(f"trace {trace_id}: {len(events)} events; tenant {', '.join(tenants)}; platforms {', '.join(platforms)}; "
          f"services {', '.join(services)}; outcomes {', '.join(outcomes)}")
    for e in events:
        print(f"  {iso(e['ts'])}  {origin(e)}  {e['type']}  {e['outcome']}  span={e['span_id']}  seq={e['seq']}{details(e)}")
    return 0
