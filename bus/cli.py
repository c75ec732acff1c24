"""The ``secbus`` command line."""

import sys


def main(argv: list[str] | None = None) -> int:
    print("secbus: the broker is not built yet (issue 3)", file=sys.stderr)
    return 2
