"""``secbus status``: is the broker healthy, and if not, what needs someone.

Reads the broker's ``/healthz`` (never behind the HTTP token), prints it for a
person (addresses, log, ingest, correlator, one line per handler) followed by
the problems and notes :mod:`secbus.health` finds, and exits 0 when there is no
problem, 1 when there is one or no broker answers, 2 on a bad option: usable
as a monitoring check as it is.  ``--json`` prints the document with
``problems`` and ``notes`` added.

The address comes from ``--http``, else from ``broker.json`` in the data dir
(where ``serve`` writes the addresses it bound), else ``$SECBUS_HTTP_ADDRESS``
or the default.  One GET on a loopback address needs no HTTP library beyond the
stdlib's ``urllib``.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from . import Usage, seconds
from ..health import DEFAULT_MAX_LAG, most_behind, notes, problems, size_text
from .stored import add_data_dir, data_dir_of

DEFAULT_HTTP = "127.0.0.1:7880"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def add_parser(sub) -> None:
    p = sub.add_parser("status", help="is the broker healthy: its /healthz for a person, and what needs someone (exit 1)")
    p.add_argument("--http", metavar="HOST:PORT", default=None,
                   help=f"the broker's HTTP address (default: from DATA_DIR/broker.json, else $SECBUS_HTTP_ADDRESS or {DEFAULT_HTTP})")
    add_data_dir(p)
    p.add_argument("--max-lag", type=int, default=DEFAULT_MAX_LAG, metavar="N",
                   help=f"a handler or the correlator further behind than N records is a problem (default {DEFAULT_MAX_LAG:,})")
    p.add_argument("--timeout", type=seconds, default=5.0, help="seconds to wait for /healthz (default 5)")
    p.add_argument("--json", action="store_true", help="the /healthz document with problems and notes added")
    p.set_defaults(run=run)


def run(args) -> int:
    if args.max_lag < 0:
        raise Usage(f"--max-lag: expected 0 or more records, got {args.max_lag}")
    runtime_path = Path(data_dir_of(args)) / "broker.json"
    runtime = read_runtime(runtime_path)
    address, where = http_address(args, runtime, runtime_path)
    url = f"http://{address}/healthz"
    try:
        doc = fetch(url, args.timeout)
    except OSError as exc:
        print(f"secbus status: no broker answers at {url} ({reason(exc)}); address {where}", file=sys.stderr)
        if runtime is not None:
            print(f"secbus status: {runtime_path} {whereabouts(runtime)}", file=sys.stderr)
        return 1
    found, seen = problems(doc, args.max_lag), notes(doc)
    if args.json:
        print(json.dumps({**doc, "problems": found, "notes": seen}, sort_keys=True))
    else:
        print("\n".join(overview(doc, url)))
        for title, lines in (("problem", found), ("note", seen)):
            if lines:
                print(f"\n{len(lines)} {title}{'s' if len(lines) > 1 else ''}:")
                print("\n".join(f"  - {line}" for line in lines))
        print("\nhealthy" if not found else "\nNOT HEALTHY")
    return 1 if found else 0


def read_runtime(path: Path) -> dict | None:
    """``broker.json`` (the pid and addresses ``serve`` bound) when it is there and readable."""
    try:
        runtime = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return runtime if isinstance(runtime, dict) else None


def http_address(args, runtime: dict | None, runtime_path: Path) -> tuple[str, str]:
    """(HOST:PORT, where it came from) for the options given."""
    if args.http:
        port = args.http.rpartition(":")[2]
        if not (port.isascii() and port.isdigit()):
            raise Usage(f"--http: expected HOST:PORT, got {args.http!r}")
        return args.http, "from --http"
    if runtime is not None and isinstance(runtime.get("http"), str):
        return runtime["http"], f"from {runtime_path}"
    if os.environ.get("SECBUS_HTTP_ADDRESS"):
        return os.environ["SECBUS_HTTP_ADDRESS"], "from $SECBUS_HTTP_ADDRESS"
    return DEFAULT_HTTP, f"the default (no {runtime_path}; --http or --data-dir to choose)"


def fetch(url: str, timeout: float) -> dict[str, Any]:
    """The /healthz document at ``url``; OSError when there is none (refused, timeout, not secbus).

    Never through an ``http_proxy`` from the environment: the broker is on loopback or
    the local network, and a corporate proxy would answer for it."""
    with _DIRECT.open(url, timeout=timeout) as response:
        body = response.read()
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or "status" not in doc:
        raise OSError("what answers there is not a secbus broker: no /healthz document")
    return doc


def reason(exc: OSError) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}: what answers there is not a secbus broker"
    inner = getattr(exc, "reason", None)
    return str(inner.strerror if isinstance(inner, OSError) and inner.strerror else inner or exc)


def whereabouts(runtime: dict) -> str:
    """What ``broker.json`` says of a broker that does not answer: gone, or half up."""
    pid = runtime.get("pid")
    if not isinstance(pid, int):
        return "names no pid"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"names pid {pid}, which is not running: the broker was killed (start it again; nothing ACKed is lost)"
    except PermissionError:
        pass
    return (f"names pid {pid}, which is running: its HTTP side (the consumer process) does not answer; "
            f"it may be restarting (the broker log says why)")


def overview(doc: dict[str, Any], url: str) -> list[str]:
    """The document as a person reads it: one line per part, then one per handler."""
    listening, ingest, log_ = doc.get("listening", {}), doc.get("ingest", {}), doc.get("log", {})
    events = log_.get("streams", {}).get("events", {})
    correlator, feed, security = doc.get("correlator", {}), doc.get("feed", {}), doc.get("security", {})
    consumers = doc.get("consumers", {})
    lines = [
        f"secbus {doc.get('version')} at {url}: {doc.get('status')}, pid {doc.get('pid')}, up {duration(doc.get('uptime_s', 0))}",
        f"  ingest      {listening.get('ingest')}: {ingest.get('events_accepted', 0):,} accepted, "
        f"{ingest.get('events_duplicate', 0):,} duplicate, backlog {ingest.get('backlog', 0):,} of {ingest.get('max_backlog', 0):,}",
        f"  log         {log_.get('path')}: {size_text(log_.get('size_bytes', 0))}, {plural(events.get('count', 0), 'event')} "
        f"(offsets {events.get('first', 0):,}-{events.get('head', 0):,}), "
        + ", ".join(plural(log_.get("streams", {}).get(s, {}).get("count", 0), s[:-1]) for s in ("traces", "alerts"))
        + f"; durability {log_.get('durability')}" + disk_text(log_.get("disk")),
        f"  correlator  {correlator.get('state')}: {plural(doc.get('open_traces', 0), 'open trace')}, "
        f"{correlator.get('closed_traces', 0):,} closed, lag {most_behind(correlator.get('lag'))[0]:,}",
        f"  feed        {listening.get('feed')}: {feed.get('subscriptions', 0)} subscriptions, {feed.get('published', 0):,} published",
        f"  consumers   pid {consumers.get('pid')}, {consumers.get('restarts', 0)} restarts",
        "  security    "
        + (f"CURVE on, {security.get('clients', 0)} client keys allowed" if security.get("curve") else "CURVE off (loopback only)")
        + f", HTTP token {'on' if security.get('http_token') else 'off'}",
        "",
    ]
    handlers = doc.get("handlers", {})
    if not handlers:
        return lines + ["  no handlers enabled"]
    width = max(len("handler"), *(len(name) for name in handlers))
    lines.append(f"  {'handler':<{width}}  {'state':<9} {'lag':>10} {'delivered':>12} {'failures':>9}  policy")
    for name, h in sorted(handlers.items()):
        lag = most_behind(h.get("lag"))[0] if "lag" in h else "-"
        lines.append(f"  {name:<{width}}  {h.get('state', '?'):<9} {fmt(lag):>10} {fmt(h.get('delivered', '-')):>12} "
                     f"{fmt(h.get('failures', '-')):>9}  {h.get('lag_policy', '-')}")
    return lines


def disk_text(disk: dict | None) -> str:
    if not disk or not disk.get("size_bytes"):
        return ""
    return f"; {size_text(disk['free_bytes'])} free of {size_text(disk['size_bytes'])}"


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def fmt(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"

