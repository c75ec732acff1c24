"""Placeholder while this handler is being written."""


class _Pending:
    pass


handler = _Pending()
