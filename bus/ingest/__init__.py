"""Ingest: the ROUTER endpoint that validates, stamps, deduplicates and commits events.

``identity`` says who sent a request; ``requests`` turns one request into a
reply or a set of events to commit; ``router`` runs the socket loop with group
commit.  Nothing heavy happens here: everything else reads the log behind a cursor.
"""

from .router import Ingest

__all__ = ["Ingest"]
