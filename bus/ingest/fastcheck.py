"""A fast "certainly valid" check for the common event, ahead of ``validate_event``.

Ingest spent most of its time in :func:`secbus_sdk.event.validate_event`
(pure Python, ~13 us per event; ``benchmarks/FINDINGS.md`` section 1).  This
module decodes one event's msgpack bytes with msgspec (a well-kept C library)
into typed Structs that carry the event's rules as constraints (enums,
ranges, lengths, no unknown fields), then checks the patterns with one
``re.fullmatch``.  :func:`split_pub` does this for every event of a PUB body
(decoded as ``events: list[msgspec.Raw]``, so each event's bytes are kept as
received).  For each event it answers one of two things:

* the decoded Struct: the event is *certainly* valid; :func:`as_event` turns
  it into exactly the dict ``validate_event`` would return (same keys, same
  canonical order, same values).  Ingest stores the bytes as received and
  reads only a few fields from the Struct, so it rarely needs the dict
  (building it was ~2.6 us per event and most of the garbage collector's work);
* ``None``: not sure; the caller runs ``validate_event``, which stays the one
  definition of a valid event and the only source of error codes and messages.

The schema is deliberately narrower than the contract, so that every rule a
msgspec type cannot state exactly makes the answer "not sure" instead of being
approximated:

* string limits are counted in UTF-8 bytes by the contract; here a string may
  have at most ``max_string_bytes // 4`` characters (4 bytes each at most), so
  a longer string, valid or not, goes the slow way;
* floats anywhere are refused here (``validate_event`` rejects non-finite ones
  and turns integral ones into integers; no msgspec type says that);
* unknown fields, extra keys in ``source`` or ``actor`` and the broker's own
  fields (``seq``, ``received_ns``, ``publisher``, ``tenant``, which ingest
  strips and re-encodes) are refused (``forbid_unknown_fields``);
* the id, trace and span id, type and attrs key patterns are checked with
  ``re.fullmatch`` after decoding, like ``validate_event`` does (msgspec's
  ``Meta(pattern=...)`` uses ``re.search``, where ``$`` accepts a trailing
  newline, and costs one regex call per field); all-zero trace and span ids
  are excluded by negative lookaheads;
* attrs count and list length limits come from the broker's configured
  :class:`~secbus_sdk.wire.Limits`: one set of Struct types is built per
  distinct ``Limits`` value (see :func:`checker_for`).

msgpack details agree with msgpack-python's decoding used elsewhere: invalid
UTF-8, ``bin`` or ext values where a string is expected, non-string keys and
booleans where an integer is expected all fail here (so: "not sure"); a key
given twice keeps its last value in both decoders, and here every copy must be
valid.  ``tests/broker/test_fastcheck.py`` checks "fast accept implies
``validate_event`` accepts with the same result" on every vector and on
generated valid, hostile and near-miss events.
"""

# No "from __future__ import annotations": the Structs below are built inside a
# function and msgspec must see their annotations as objects, not strings.
import functools
import re
from typing import Annotated, Callable, Literal, Union

import msgpack
import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from secbus_sdk import wire
from secbus_sdk.event import MAX_INT64, MAX_TYPE_LEN, OUTCOMES, SEVERITIES
from secbus_sdk.wire import DEFAULT_LIMITS, Limits

# validate_event's regexes (secbus_sdk.event), joined into one fullmatch over
# "id trace_id span_id type": no segment pattern allows a space and there are
# exactly four, so a field holding a space fails the match, and it is exact.
# (A msgspec Meta pattern per field costs ~0.5 us each; one combined match
# costs about as much as one.)  The lookaheads exclude all-zero trace and span ids.
IDS_PATTERN = (
    r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    r" (?!0{32} )[0-9a-f]{32}"
    r" (?!0{16} )[0-9a-f]{16}"
    r" [a-z0-9_]+(?:\.[a-z0-9_]+)+"
)
ATTR_KEY = r"[A-Za-z_][A-Za-z0-9_.:-]{0,127}"
ATTR_KEYS_PATTERN = rf"{ATTR_KEY}(?: {ATTR_KEY})*"  # attrs keys joined by spaces, when the count of spaces shows no key has one
_IDS_MATCH = re.compile(IDS_PATTERN).fullmatch
_ATTR_KEYS_MATCH = re.compile(ATTR_KEYS_PATTERN).fullmatch

Check = Callable[[bytes], Union[Struct, None]]


class Checker:
    """The fast checks for one set of limits: one event, or a whole PUB body."""

    __slots__ = ("certain", "pub", "limits")

    def __init__(self, limits: Limits):
        self.limits = limits
        #: the event's Struct when certainly valid, else None
        self.certain = _build(limits)

        # A PUB body of exactly these two keys; anything else (extra keys, a
        # duplicate key, seq out of range) is left to requests.split_pub.
        class Pub(Struct, forbid_unknown_fields=True):
            events: Annotated[list[msgspec.Raw], Meta(max_length=limits.max_batch_events)]
            seq: Annotated[int, Meta(ge=0)]  # msgpack itself bounds it to uint64

        self.pub = msgspec.msgpack.Decoder(Pub).decode


def _no_ext(code: int, data: bytes):
    raise ValueError("ext type")


def split_pub(frames: list[bytes], limits: Limits) -> tuple[dict, list[bytes], list[bool]] | None:
    """Like ``requests.split_pub`` (the body, each event's bytes as received),
    plus which events are certainly valid.

    For the usual PUB (a map of exactly ``events`` and ``seq``), returns
    ``(body, spans, sure)``: ``body["events"][i]`` is the event's msgspec
    Struct where ``sure[i]`` (:func:`as_event` gives ``validate_event``'s dict;
    ingest needs only a few fields, so it rarely asks), and otherwise the event
    as msgpack-python decodes it, for ``validate_event`` to judge.  Returns None
    for anything else, or if any event's bytes do not decode, so the caller's
    existing path produces exactly the reply it did before."""
    if len(frames) != 3 or frames[0] != wire.MAGIC or frames[1] != wire.PUB:
        return None
    data = frames[2]
    # 0x82: a fixmap of two entries; with both fields required, no key can repeat.
    if len(data) > limits.max_frame_bytes or data[:1] != b"\x82":
        return None
    checker = checker_for(limits)
    try:
        pub = checker.pub(data)
    except Exception:
        return None
    check = checker.certain
    events: list = []
    spans: list[bytes] = []
    sure: list[bool] = []
    for raw in pub.events:
        span = bytes(raw)
        event = check(span)
        if event is None:
            try:
                event = msgpack.unpackb(span, raw=False, strict_map_key=True, ext_hook=_no_ext, max_ext_len=0)
            except Exception:
                return None
            sure.append(False)
        else:
            sure.append(True)
        events.append(event)
        spans.append(span)
    return {"events": events, "seq": pub.seq}, spans, sure


def _build(limits: Limits) -> Check:
    """The Struct types and decoder for one set of limits; returns the check."""
    short = limits.max_string_bytes // 4  # characters that surely fit in max_string_bytes of UTF-8
    Text = Annotated[str, Meta(max_length=short)]
    Required = Annotated[str, Meta(min_length=1, max_length=short)]
    UInt63 = Annotated[int, Meta(ge=0, le=MAX_INT64)]
    Scalar = Union[Text, int, bool, None]  # no float: see the module docstring
    AttrList = Annotated[list[Scalar], Meta(max_length=limits.max_list_items)]
    Attrs = Annotated[dict[str, Union[Text, int, bool, None, AttrList]], Meta(max_length=limits.max_attrs)]

    # Fields are declared in sorted order (kw_only allows required after optional)
    # so that to_builtins returns them in validate_event's canonical order.
    # gc=False: the decoder fills these with strings, numbers and fresh dicts and
    # lists of scalars only, which cannot form a cycle; untracked, the short-lived
    # Structs do not trigger garbage collections (decode measured 3.3 -> 2.0 us).
    class Source(Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
        host: Union[Text, UnsetType] = UNSET
        pid: Union[Annotated[int, Meta(ge=0, le=2**32 - 1)], UnsetType] = UNSET
        platform: Required
        sdk: Required
        service: Required

    class Actor(Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
        ip: Union[Text, UnsetType] = UNSET
        key_id: Union[Text, UnsetType] = UNSET
        session: Union[Text, UnsetType] = UNSET
        user: Union[Text, UnsetType] = UNSET

    class Event(Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
        actor: Union[Actor, UnsetType] = UNSET
        attrs: Union[Attrs, UnsetType] = UNSET
        duration_us: Union[UInt63, UnsetType] = UNSET
        id: Annotated[str, Meta(max_length=36)]  # the patterns: see IDS_PATTERN
        outcome: Literal[OUTCOMES]  # type: ignore[valid-type]
        reason: Union[Text, UnsetType] = UNSET
        resource: Union[Text, UnsetType] = UNSET
        severity: Union[Literal[SEVERITIES], UnsetType] = UNSET  # type: ignore[valid-type]
        source: Source
        span_id: Annotated[str, Meta(max_length=16)]
        trace_id: Annotated[str, Meta(max_length=32)]
        ts: UInt63
        type: Annotated[str, Meta(max_length=MAX_TYPE_LEN)]
        v: Literal[1]

    decode = msgspec.msgpack.Decoder(Event).decode
    ids_match, attr_keys_match = _IDS_MATCH, _ATTR_KEYS_MATCH

    def certain(data: bytes) -> Struct | None:
        """The decoded Struct if ``data`` is certainly a valid event, else None."""
        try:
            struct = decode(data)
        except Exception:  # ValidationError, DecodeError, UnicodeDecodeError...: not sure
            return None
        if not ids_match(f"{struct.id} {struct.trace_id} {struct.span_id} {struct.type}"):
            return None
        attrs = struct.attrs
        if attrs:
            joined = " ".join(attrs)
            # n keys, n - 1 spaces: no key holds a space, so the tokens are the keys
            if joined.count(" ") != len(attrs) - 1 or not attr_keys_match(joined):
                return None
        return struct

    return certain


def as_event(struct: Struct) -> dict:
    """The dict ``validate_event`` returns for an event :meth:`Checker.certain` accepted."""
    event = msgspec.to_builtins(struct)
    attrs = event.get("attrs")
    if attrs is not None and len(attrs) > 1:
        keys = list(attrs)
        if keys != sorted(keys):  # validate_event returns attrs in sorted key order
            event["attrs"] = {key: attrs[key] for key in sorted(keys)}
    return event


@functools.lru_cache(maxsize=8)
def checker_for(limits: Limits = DEFAULT_LIMITS) -> Checker:
    """The fast checks for ``limits`` (cached: ``Limits`` is a frozen dataclass)."""
    return Checker(limits)


def fast_validate(data: bytes, limits: Limits = DEFAULT_LIMITS) -> dict | None:
    """``validate_event(unpack(data), limits)`` when ``data`` is certainly a valid
    event (the same dict), ``None`` when not sure (run ``validate_event``)."""
    struct = checker_for(limits).certain(data)
    return None if struct is None else as_event(struct)
