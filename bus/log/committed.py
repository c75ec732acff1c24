"""Committed events handed from the writing process (ingest) to the reading one (consumers).

Why: the consumer process used to read every committed range back from
SQLite.  Python's ``sqlite3`` lets the interpreter lock go around each row it
steps, and in the consumer process (correlator, feed and handler threads all
busy) getting it back costs a thread switch per row: reading 2,000 events took
~20 us of CPU and ~130 us of wall time per event, against 4-7 us with no other
busy thread (benchmarks/FINDINGS.md section 6).  Ingest still holds the bytes it
has just committed, so it sends them over the pipe once per commit; the
consumer process keeps them as stored rows and decodes them only for readers
that want dicts (:mod:`secbus.log.stored`).  A range that did not come this way (dropped
while the consumer process was slow or restarting) is read from the log.

A payload is a plain tuple (it is pickled onto the pipe):
``(first_seq, lengths, received_ns, publishers, tenants, bodies)`` where
``bodies`` is the stored bodies back to back and the lists hold one entry per
event, in seq order (a commit's stored events have consecutive seqs).
"""

from __future__ import annotations

from typing import Sequence

from .base import StampedEvent
from .stored import StoredRow

Payload = tuple  # (first_seq, lengths, received_ns, publishers, tenants, bodies)


def pack(records: Sequence[StampedEvent], seqs: Sequence[int | None]) -> Payload | None:
    """The payload for one commit: ``records`` as given to ``append_events`` and the
    seqs it returned (None for a duplicate, which was not stored)."""
    if None in seqs:  # duplicates: not stored
        stored = [record for record, seq in zip(records, seqs) if seq is not None]
        if not stored:
            return None
        first = next(seq for seq in seqs if seq is not None)
    else:
        stored, first = records, seqs[0]
    bodies = [record.body for record in stored]
    return (first, [len(body) for body in bodies], [record.received_ns for record in stored],
            [record.publisher for record in stored], [record.tenant for record in stored], b"".join(bodies))


def last_seq(payload: Payload) -> int:
    return payload[0] + len(payload[1]) - 1


def size(payload: Payload) -> int:
    return len(payload[5])


def rows(payload: Payload, after: int) -> list[StoredRow]:
    """The stored rows (:mod:`secbus.log.stored`) of the events after seq ``after``, as the
    log's ``read_stored`` returns them: slices of the bodies, nothing decoded."""
    first, lengths, received_ns, publishers, tenants, bodies = payload
    out = []
    offset = 0
    for i, length in enumerate(lengths):
        if first + i > after:
            out.append((first + i, received_ns[i], publishers[i], tenants[i], bodies[offset : offset + length]))
        offset += length
    return out
