"""One module per ``secbus`` subcommand; each has ``add_parser(subparsers)`` and ``run(args) -> int``.

A command that finds an option it cannot use raises :class:`Usage`; ``secbus.cli``
prints it as ``secbus COMMAND: message`` and exits 2.
"""

import argparse
import math


class Usage(ValueError):
    """A bad option value or unusable input; the message names the option and the value."""


def seconds(text: str) -> float:
    """An argparse type for a wait: a number of seconds above 0 (a negative one would wait for ever)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return value
