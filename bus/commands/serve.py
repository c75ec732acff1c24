"""``secbus serve``: run the broker."""

from __future__ import annotations

import argparse
import errno
import logging
import sys

from ..config import ConfigError, data_dir_of, load


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="run the broker", description="Run the broker on embedded defaults (see docs/operations.md).")
    add_config_options(p)
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(run=run)


def add_config_options(p: argparse.ArgumentParser) -> None:
    """The options that choose the broker's config (``serve`` and ``config`` share them)."""
    p.add_argument("--config", metavar="FILE", help="TOML config file (default: $SECBUS_CONFIG, else none)")
    p.add_argument("--data-dir", metavar="DIR", help="where the event log lives (default ./secbus-data)")
    p.add_argument("--ingest", metavar="ADDR", help="ingest ROUTER endpoint (default tcp://127.0.0.1:7878)")
    p.add_argument("--feed", metavar="ADDR", help="live feed XPUB endpoint (default tcp://127.0.0.1:7879)")
    p.add_argument("--http", metavar="HOST:PORT", help="HTTP address for /healthz and /metrics (default 127.0.0.1:7880)")


def flags_of(args: argparse.Namespace) -> dict:
    flags: dict = {}
    if args.data_dir:
        flags["data_dir"] = args.data_dir
    if args.ingest:
        flags["ingest"] = {"endpoint": args.ingest}
    if args.feed:
        flags["feed"] = {"endpoint": args.feed}
    if args.http:
        flags["http"] = {"address": args.http}
    return flags


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load(args.config, flags=flags_of(args))
    except ConfigError as exc:
        print(f"secbus serve: config error: {exc}", file=sys.stderr)
        return 2
    from ..app import DataDirInUse, serve
    from ..auth.binding import InsecureBindError
    from ..auth.security import SecurityError
    from ..consumers.supervisor import ConsumerStartError

    try:
        return serve(config)
    except (SecurityError, InsecureBindError) as exc:
        print(f"secbus serve: refusing to start: {exc}", file=sys.stderr)
        return 2
    except DataDirInUse as exc:
        print(f"secbus serve: {exc}", file=sys.stderr)
        return 2
    except ConsumerStartError as exc:
        print(f"secbus serve: {'cannot listen' if exc.kind == 'listen' else 'consumers did not start'}: {exc}", file=sys.stderr)
        return 2
    except zmq_error() as exc:
        print(f"secbus serve: cannot listen: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        storage = exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO, errno.EROFS)
        where = f" writing in {data_dir_of(config)}: is the file system full, read-only or failing? (df, dmesg)"
        print(f"secbus serve: {exc}{where if storage else ''}", file=sys.stderr)
        return 2


def zmq_error():
    import zmq

    return zmq.ZMQError
