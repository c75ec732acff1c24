"""The ``secbus`` command line: one subcommand per module in ``secbus.commands``."""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .auth import keys
from .commands import ping, serve

COMMANDS = [serve, ping, keys]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="secbus", description="secbus: a security event bus")
    p.add_argument("--version", action="version", version=f"secbus {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if not getattr(args, "run", None):
        p.print_help(sys.stderr)
        return 2
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
