"""Ingest: the ROUTER endpoint that validates, stamps, deduplicates and commits events.

``identity`` says who sent a request; ``requests`` turns one request into a
reply or a set of events to commit; ``router`` runs the socket loop with group
commit.  Nothing heavy happens here: everything else reads the log behind a cursor.

The package imports nothing itself: the audit writer process imports
``secbus.ingest.redact`` (the shared secret words) and must not pull in ZeroMQ
and the SDK with the router.
"""
