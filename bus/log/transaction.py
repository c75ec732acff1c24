"""``with immediate(conn):``: one write transaction on an autocommit sqlite3 connection.

``BEGIN IMMEDIATE`` takes the write lock at once (no deadlock between two readers
upgrading).  On an exception the transaction is rolled back *if SQLite has not
done so already*: after a full disk or an I/O error (SQLITE_FULL, SQLITE_IOERR)
SQLite may roll back by itself, and a second ``ROLLBACK`` would then raise
"cannot rollback - no transaction is active" in place of the error that says
what is wrong.  The stdlib's ``with conn:`` does not apply: it commits only what
a DML statement began implicitly, and these connections run with
``isolation_level=None``.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
