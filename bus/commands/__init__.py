"""One module per ``secbus`` subcommand; each has ``add_parser(subparsers)`` and ``run(args) -> int``."""
