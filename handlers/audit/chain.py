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

import msgspec

GENESIS = "0" * 64
UNHASHED_KEYS = ("hash", "sig")

# Record kinds.
FILE = "file"              # first record of every audit file
EVENT = "event"            # one committed event
CHECKPOINT = "checkpoint"  # count and head hash, optionally signed
KINDS = (FILE, EVENT, CHECKPOINT)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# The canonical serialisation above is the contract; writing it with the
# stdlib's json is ~70% of the audit handler's CPU per event.  msgspec's
# encoder with sorted keys writes the same bytes for maps with string keys,
# strings (same escapes: \" \\ \b \f \n \r \t, other control characters as
# lowercase \u00XX, everything else as UTF-8), integers of any size, booleans
# and null -- but not floats (it writes 1e16 where Python writes 1e+16, and
# null for NaN where json refuses it).  So it is used only for values made of
# those exact types, which every event without a float is; anything else
# (floats, subclasses, tuples, other types), and anything msgspec refuses
# (non-string keys, lone surrogates), takes the json path, which also raises
# what it always raised.  tests/handlers/test_audit_canonical.py checks the
# byte identity on the shared vectors and on random values.
_PLAIN = frozenset((str, int, bool, type(None)))
_fast_encode = msgspec.json.Encoder(order="sorted").encode


def _plain(items) -> bool:
    """Whether every value in ``items`` (nested dicts and lists included) is str, int, bool or None."""
    for item in items:
        kind = type(item)
        if kind in _PLAIN:
            continue
        if kind is dict:
            if not _plain(item.values()):
                return False
        elif kind is list:
            if not _plain(item):
                return False
        else:
            return False
    return True


# msgpack's markers of the types _plain refuses: bin (0xc4-0xc6), ext (0xc7-0xc9,
# 0xd4-0xd8), float (0xca, 0xcb).  Bytes without any of them decode to plain values only.
_NOT_PLAIN_MARKERS = bytes([*range(0xC4, 0xCC), *range(0xD4, 0xD9)])


def plain_msgpack(data: bytes) -> bool:
    """Whether msgpack ``data`` certainly decodes to plain values (str, int, bool, None,
    maps and arrays): no byte of it is a bin, ext or float marker.  A "no" is only "not
    sure" (the byte may sit inside a string or an integer): :func:`_plain` then decides.
    A third of the cost of walking the decoded event (one C pass: deleting the markers
    leaves the length as it was)."""
    return len(data.translate(None, _NOT_PLAIN_MARKERS)) == len(data)


def canonical(value: dict, known_plain: bool = False) -> bytes:
    """``value`` in the canonical serialisation, as UTF-8 bytes (``known_plain``: the
    caller knows it holds only plain values, so they need not be checked)."""
    if type(value) is dict:
        try:
            if known_plain or _plain(value.values()):
                return _fast_encode(value)
        except Exception:  # non-string keys, lone surrogates, cycles: the json path decides
            pass
    return _dumps(value).encode("utf-8")


def canonical_bytes(record: dict) -> bytes:
    """The bytes a record's hash is computed over (everything but hash and sig)."""
    return canonical({k: v for k, v in record.items() if k not in UNHASHED_KEYS})


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

    ``record`` must not hold ``hash`` or ``sig`` yet.  The stored line is the
    canonical JSON with ``"hash":...`` added; keys are sorted, so it goes
    right before the first top-level key that sorts after ``hash``.
    Searching for that key from the right is safe: the values of the keys
    after it (numbers, hex, short strings) cannot contain it, and a quote
    inside any JSON string is escaped."""
    record["n"] = n
    record["prev"] = prev
    data = canonical(record)
    digest = hashlib.sha256(data).hexdigest()
    record["hash"] = digest
    field = b',"hash":"' + digest.encode("ascii") + b'"'
    later = [k for k in record if k > "hash"]
    if not later:
        return data[:-1] + field + b"}\n"
    if len(later) == len(record) - 1:  # no key sorts before hash: it comes first
        return b"{" + field[1:] + b"," + data[1:] + b"\n"
    at = data.rindex(b',"' + min(later).encode("utf-8") + b'":')
    return data[:at] + field + data[at:] + b"\n"


def _list_bytes(value: list) -> bytes:
    return canonical({"": value})[4:-1]  # the list as it appears inside a record


def seal_event_line(event: dict, seq: int, events: int, redacted: list[str] | None,
                    n: int, prev: str, known_plain: bool = False) -> tuple[bytes, str]:
    """The stored line and hash of the event record ``{"kind": "event", "seq",
    "event", "events", "redacted" (when not empty), "n", "prev"}``: the bytes
    :func:`seal_line` writes for that record, without building it.

    Why: the writer's hot path.  The top-level keys of an event record are
    fixed and sort as ``event, events, hash, kind, n, prev, redacted, seq``,
    so the canonical form is the event's canonical bytes with the other
    fields written around them; only the event needs an encoder.  Values of
    unexpected types take :func:`seal_line` (tests compare the two); ``known_plain`` as
    for :func:`canonical`."""
    if not (type(seq) is int and type(events) is int and type(n) is int and type(prev) is str
            and prev.isascii() and prev.isalnum()):
        record = {"kind": EVENT, "seq": seq, "event": event, "events": events}
        if redacted:
            record["redacted"] = redacted
        line = seal_line(record, n, prev)
        return line, record["hash"]
    head = b'{"event":%b,"events":%d' % (canonical(event, known_plain) if type(event) is dict else canonical({"": event})[4:-1],
                                          events)
    tail = b',"kind":"event","n":%d,"prev":"%b"%b,"seq":%d}' % (
        n, prev.encode("ascii"), b',"redacted":' + _list_bytes(redacted) if redacted else b"", seq)
    digest = hashlib.sha256(head + tail).hexdigest()
    return b'%b,"hash":"%b"%b\n' % (head, digest.encode("ascii"), tail), digest


def encode_line(record: dict) -> bytes:
    """One stored line: the canonical JSON of the whole record and a newline."""
    return canonical(record) + b"\n"
