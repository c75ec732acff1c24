"""The ``secbus`` command line: one subcommand per module, each with ``add_parser(sub)``.

The broker's own commands live in ``secbus.commands``; ``audit verify`` and
``keys generate`` belong to the audit handler and the auth package and are
registered from there.  If one of those cannot be imported, its command still
exists and says clearly that it is not available (exit 2).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__
from .commands import Usage, alerts, backup, config, emit, events, ping, serve, status, tail, trace

COMMANDS = [serve, status, config, emit, tail, trace, events, alerts, backup, ping]
#: (module, command name, what it does) registered when importable
OPTIONAL = [
    ("secbus.handlers.audit.verify", "audit", "audit log tools: audit verify FILE... [--public-key FILE]"),
    ("secbus.auth.keys", "keys", "CURVE key pairs: keys generate NAME [--dir DIR]"),
]


def _unavailable(sub, name: str, help_text: str, error: Exception) -> None:
    p = sub.add_parser(name, help=f"{help_text} (not available)", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)

    def run(args) -> int:
        print(f"secbus {name}: not available in this installation ({type(error).__name__}: {error})", file=sys.stderr)
        return 2

    p.set_defaults(run=run)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="secbus", description="secbus: a security event bus (docs/operations.md)")
    p.add_argument("--version", action="version", version=f"secbus {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    for module_name, name, help_text in OPTIONAL:
        try:
            importlib.import_module(module_name).add_parser(sub)
        except Exception as exc:  # a missing or broken optional part must not break the other commands
            _unavailable(sub, name, help_text, exc)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if not getattr(args, "run", None):
        p.print_help(sys.stderr)
        return 2
    try:
        return args.run(args)
    except Usage as exc:
        print(f"secbus {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`secbus events | head`): stop quietly, as Unix tools do.  Point
        # stdout at /dev/null so the interpreter's own flush at exit does not fail again
        # (the recipe of the Python docs, "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
