"""``secbus ping``: ask a broker for PONG and print the round trip."""

from __future__ import annotations

import os
import sys
import time

from secbus_sdk import wire

from . import seconds
from .request import NoAnswer, request

DEFAULT_ENDPOINT = "tcp://127.0.0.1:7878"


def default_endpoint() -> str:
    return os.environ.get("SECBUS_INGEST_ENDPOINT", DEFAULT_ENDPOINT)


def add_request_options(p, timeout: float, waits_for: str) -> None:
    """--endpoint, --timeout and the CURVE key options that every one-shot request command takes."""
    p.add_argument("--endpoint", default=None, help=f"ingest endpoint (default $SECBUS_INGEST_ENDPOINT or {DEFAULT_ENDPOINT})")
    p.add_argument("--timeout", type=seconds, default=timeout, help=f"seconds to wait for {waits_for} (default {timeout:g})")
    try:
        from ..auth.client import add_client_key_options

        add_client_key_options(p)
    except ImportError:
        pass


def add_parser(sub) -> None:
    p = sub.add_parser("ping", help="check that a broker answers")
    add_request_options(p, 3.0, "PONG")
    p.set_defaults(run=run)


def curve_of(args):
    """CURVE client keys when --server-key (or SECBUS_SERVER_KEY) is given, else None."""
    if not (getattr(args, "server_key", None) or os.environ.get("SECBUS_SERVER_KEY")):
        return None
    from ..auth.client import client_curve

    return client_curve(args)


def run(args) -> int:
    endpoint = args.endpoint or default_endpoint()
    start = time.perf_counter()
    try:
        command, body = request(endpoint, wire.PING, {}, args.timeout, curve_of(args))
    except NoAnswer as exc:
        print(f"secbus ping: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # a key file that cannot be used
        print(f"secbus ping: {exc}", file=sys.stderr)
        return 2
    except wire.WireError as exc:
        print(f"secbus ping: bad reply: {exc}", file=sys.stderr)
        return 1
    rtt_ms = (time.perf_counter() - start) * 1000
    if command != wire.PONG:
        print(f"secbus ping: expected PONG, got {command.decode()} {body}", file=sys.stderr)
        return 1
    print(f"PONG from {endpoint}: protocol v{body.get('version')}, round trip {rtt_ms:.2f} ms")
    return 0
