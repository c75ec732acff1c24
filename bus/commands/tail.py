"""``secbus tail``: print the live feed as it happens.

With field options (``--actor-user alice``, ``--attr alg=RS256``, the same as
``secbus events``), an analyst follows one actor, key or service live: an event
is shown when it holds every field, a closed trace when one of its events
does, and an alert when its group names every field (``actor.user=alice`` in
``tenant=default,actor.user=alice``): alerts about that actor.
"""

from __future__ import annotations

import datetime
import json
import os
import sys

import msgpack
import zmq

from ..log.fields import FieldMatch
from . import Usage
from .event_filters import add_field_options, fields_of
from .request import connect

DEFAULT_FEED = "tcp://127.0.0.1:7879"


def add_parser(sub) -> None:
    p = sub.add_parser("tail", help="print the live feed (events, traces, alerts) as it happens")
    p.add_argument("--topic", action="append", default=[], metavar="PREFIX", help="topic prefix to follow (repeatable): event.authn., trace, alert. (default: everything)")
    p.add_argument("--json", action="store_true", help='one JSON object per line: {"topic": ..., "body": ...}')
    p.add_argument("--endpoint", default=None, help=f"feed endpoint (default $SECBUS_FEED_ENDPOINT or {DEFAULT_FEED})")
    p.add_argument("--count", type=int, default=0, help="exit after this many messages (default: run until Ctrl-C)")
    p.add_argument("--tenant", default=None, help="with CURVE: the tenant whose namespace to subscribe under")
    add_field_options(p)
    try:
        from ..auth.client import add_client_key_options

        add_client_key_options(p)
    except ImportError:
        pass
    p.set_defaults(run=run)


def _time(ns) -> str:
    if not isinstance(ns, int):
        return "-"
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def line_for(topic: str, body: dict) -> str:
    """A one-line human rendering of a feed message."""
    if topic.startswith("event."):
        source = body.get("source") or {}
        actor = body.get("actor") or {}
        parts = [_time(body.get("ts")), body.get("type", "?"), body.get("outcome", "?")]
        if body.get("severity"):
            parts.append(body["severity"])
        parts.append(f"{source.get('platform', '?')}/{source.get('service', '?')}")
        if actor.get("user"):
            parts.append(f"user={actor['user']}")
        parts.append(f"trace={body.get('trace_id', '')}")
        parts.append(f"seq={body.get('seq')}")
        return "  ".join(str(p) for p in parts)
    if topic.endswith("trace") or topic.startswith("trace"):
        flags = ",".join(body.get("flags") or []) or "-"
        return (f"{_time(body.get('last_ts'))}  trace {body.get('trace_id')}  tenant={body.get('tenant')}  "
                f"events={body.get('event_count', len(body.get('events') or []))}  platforms={','.join(body.get('platforms') or [])}  flags={flags}")
    return f"{_time(body.get('last_ts'))}  ALERT {body.get('severity', '?').upper()}  {body.get('rule', '?')}  {body.get('summary', '')}"


def concerns(match: FieldMatch, topic: str, body: dict) -> bool:
    """Whether a feed message is about what the field options name (see the module docstring)."""
    if not match:
        return True
    if topic.startswith("event."):
        return match.matches(body)
    if topic == "trace":
        return any(match.matches(event) for event in body.get("events") or [] if isinstance(event, dict))
    group = str(body.get("group", "")).split(",")
    return all(f"{path}={text}" in group for path, text in match.fields.items())


def run(args) -> int:
    if args.count < 0:
        raise Usage(f"--count: expected 0 (run until Ctrl-C) or more, got {args.count}")
    match = FieldMatch(fields_of(args))
    endpoint = args.endpoint or os.environ.get("SECBUS_FEED_ENDPOINT", DEFAULT_FEED)
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    split = None
    try:
        if getattr(args, "server_key", None) or os.environ.get("SECBUS_SERVER_KEY"):
            from ..auth.client import apply_client_curve, client_curve
            from ..auth.feed import split_topic, subscriptions_for, wanted

            apply_client_curve(sock, client_curve(args))
            prefixes = subscriptions_for(args.topic, args.tenant)
            split = split_topic
        else:
            prefixes = [t.encode() for t in (args.topic or [""])]
    except (ValueError, OSError) as exc:
        print(f"secbus tail: {exc}", file=sys.stderr)
        return 2
    try:
        connect(sock, endpoint)
    except ValueError as exc:
        print(f"secbus tail: {exc}", file=sys.stderr)
        sock.close(0)
        return 2
    for prefix in prefixes:
        sock.setsockopt(zmq.SUBSCRIBE, prefix)
    about = "".join(f"; {path}={text}" for path, text in match.fields.items())
    print(f"secbus tail: following {endpoint} ({', '.join(args.topic) or 'everything'}{about}); Ctrl-C to stop", file=sys.stderr)
    seen = 0
    try:
        while True:
            frames = sock.recv_multipart()
            if len(frames) != 2:
                continue
            raw_topic, payload = frames
            if split is not None:  # CURVE: strip the tenant namespace; without --tenant, filter here
                _, raw_topic = split(raw_topic)
                if not wanted(raw_topic, args.topic):
                    continue
            topic = raw_topic.decode("utf-8", "replace")
            try:
                body = msgpack.unpackb(payload, raw=False)
            except Exception:
                print(f"secbus tail: undecodable message on {topic!r}", file=sys.stderr)
                continue
            if not concerns(match, topic, body):
                continue
            if args.json:
                print(json.dumps({"topic": topic, "body": body}, sort_keys=True), flush=True)
            else:
                print(line_for(topic, body), flush=True)
            seen += 1
            if args.count and seen >= args.count:
                return 0
    except KeyboardInterrupt:
        return 0
    finally:
        sock.close(0)
