"""``secbus emit``: publish one event, wait for its ACK, print its id."""

from __future__ import annotations

import socket
import os
import sys
import time

from secbus_sdk import wire
from secbus_sdk.event import ACTOR_FIELDS, OUTCOMES, SEVERITIES, new_event_id, new_span_id, new_trace_id, validate_event
from secbus_sdk.tracecontext import parse_traceparent

from .. import __version__
from .ping import add_request_options, curve_of, default_endpoint
from .request import NoAnswer, request


def add_parser(sub) -> None:
    p = sub.add_parser("emit", help="publish one event and print its id once the broker ACKs it")
    p.add_argument("type", help="event type, lowercase dotted (authn.login)")
    p.add_argument("--outcome", default="success", choices=OUTCOMES)
    p.add_argument("--severity", choices=SEVERITIES)
    p.add_argument("--attr", action="append", default=[], metavar="K=V", help="an attribute (repeatable); numbers and true/false are typed")
    for field in ACTOR_FIELDS:
        p.add_argument(f"--actor-{field.replace('_', '-')}", metavar=field.upper(), help=f"actor.{field}")
    p.add_argument("--resource", help="what was checked (a key, a document, a route)")
    p.add_argument("--reason", help="a short reason code")
    p.add_argument("--traceparent", metavar="HEADER", help="W3C traceparent to join (an invalid one starts a new trace)")
    p.add_argument("--service", default="secbus-cli", help="source.service (default secbus-cli)")
    add_request_options(p, 5.0, "the ACK")
    p.set_defaults(run=run)


def typed(value: str):
    if value in ("true", "false"):
        return value == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def build_event(args) -> dict:
    trace = parse_traceparent(args.traceparent) if args.traceparent else None
    if args.traceparent and trace is None:
        print(f"secbus emit: --traceparent {args.traceparent!r} is not valid W3C trace context; starting a new trace", file=sys.stderr)
    attrs = {}
    for item in args.attr:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--attr: expected K=V, got {item!r}")
        attrs[key] = typed(value)
    event = {
        "v": 1,
        "id": new_event_id(),
        "ts": time.time_ns(),
        "type": args.type,
        "outcome": args.outcome,
        "trace_id": trace[0] if trace else new_trace_id(),
        "span_id": new_span_id(),
        "source": {"platform": "python", "sdk": f"secbus-cli/{__version__}", "service": args.service, "host": socket.gethostname(), "pid": os.getpid()},
    }
    if attrs:
        event["attrs"] = attrs
    if args.severity:
        event["severity"] = args.severity
    actor = {field: getattr(args, f"actor_{field}") for field in ACTOR_FIELDS if getattr(args, f"actor_{field}")}
    if actor:
        event["actor"] = actor
    if args.resource:
        event["resource"] = args.resource
    if args.reason:
        event["reason"] = args.reason
    return validate_event(event)


def run(args) -> int:
    try:
        event = build_event(args)
    except (ValueError, wire.WireError) as exc:
        print(f"secbus emit: {exc}", file=sys.stderr)
        return 2
    endpoint = args.endpoint or default_endpoint()
    try:
        curve = curve_of(args)
        command, body = request(endpoint, wire.PUB, {"events": [event], "seq": 1}, args.timeout, curve)
    except NoAnswer as exc:
        print(f"secbus emit: {exc}", file=sys.stderr)
        return 1
    except (wire.WireError, ValueError) as exc:
        print(f"secbus emit: {exc}", file=sys.stderr)
        return 2
    if command == wire.ERR:
        extra = f" (retry after {body['retry_after_ms']} ms)" if "retry_after_ms" in body else ""
        print(f"secbus emit: broker refused the request: {body.get('code')}: {body.get('message')}{extra}", file=sys.stderr)
        return 1
    if command != wire.ACK:
        print(f"secbus emit: unexpected reply {command!r}", file=sys.stderr)
        return 1
    if body.get("rejected"):
        _, code, message = body["rejected"][0]
        print(f"secbus emit: event rejected: {code}: {message}", file=sys.stderr)
        return 1
    print(event["id"])
    return 0
