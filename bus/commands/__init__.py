"""One module per ``secbus`` subcommand; each has ``add_parser(subparsers)`` and ``run(args) -> int``.

A command that finds an option it cannot use raises :class:`Usage`; ``secbus.cli``
prints it as ``secbus COMMAND: message`` and exits 2.
"""


class Usage(ValueError):
    """A bad option value or unusable input; the message names the option and the value."""
