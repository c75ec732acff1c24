"""The audit chain: canonical serialisation, record hashes and links.

Each audit record is one JSON object on one line.  Its ``hash`` is the
SHA-256 (lowercase hex) of its *canonical serialisation*: the record without
its ``hash`` and ``sig`` keys, written as JSON with keys sorted at every
level, no whitespace (``","`` and ``":"`` separators), non-ASCII characters
written as themselves (``ensure_ascii=False``), NaN and infinities refused,
encoded as UTF-8.  Every record carries ``prev``, the ``hash`` of the record
before it (64 zeros for the very first record), and ``n``, its position in
the chain counting from 1, so that changing, removing, adding or moving any
record breaks a link that ``secbus audit verify`` reports by file and line.

The stored line uses the same serialisation plus ``hash`` (and ``sig``), so
a verifier in any language needs only a JSON parser, a sorted-key JSON
writer and SHA-256 (docs/audit.md spells it out).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS = "0" * 64
UNHASHED_KEYS = ("hash", "sig")

# Record kinds.
FILE = "file"              # first record of every audit file
EVENT = "event"            # one committed event
CHECKPOINT = "checkpoint"  # count and head hash, optionally signed
KINDS = (FILE, EVENT, CHECKPOINT)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_bytes(record: dict) -> bytes:
    """The bytes a record's hash is computed over (everything but hash and sig)."""
    return _dumps({k: v for k, v in record.items() if k not in UNHASHED_KEYS}).encode("utf-8")


def record_hash(record: dict) -> str:
    return hashlib.sha256(canonical_bytes(record)).hexdigest()


def seal(record: dict, n: int, prev: str) -> dict:
    """Link ``record`` after the record whose hash is ``prev`` and set its hash."""
    record["n"] = n
    record["prev"] = prev
    record["hash"] = record_hash(record)
    return record


def seal_line(record: dict, n: int, prev: str) -> bytes:
    """:func:`seal` and :func:`encode_line` in one serialisation (the hot path).

    The stored line is the canonical JSON with ``"hash":...`` added; keys are
    sorted, so it goes right before the first top-level key that sorts after
    ``hash``.  Searching for that key from the right is safe: the values of
    the keys after it (numbers, hex, short strings) cannot contain it, and a
    quote inside any JSON string is escaped.  Records with a ``sig`` take
    the plain path."""
    record["n"] = n
    record["prev"] = prev
    text = _dumps(record)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    record["hash"] = digest
    later = [k for k in record if k > "hash"]
    if not later:
        return (text[:-1] + f',"hash":"{digest}"}}\n').encode("utf-8")
    at = text.rindex(f',"{min(later)}":')
    return (text[:at] + f',"hash":"{digest}"' + text[at:] + "\n").encode("utf-8")


def encode_line(record: dict) -> bytes:
    """One stored line: the canonical JSON of the whole record and a newline."""
    return _dumps(record).encode("utf-8") + b"\n"
