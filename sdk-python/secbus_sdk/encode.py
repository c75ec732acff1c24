"""One-pass msgpack encoding of queued events, for the sender thread.

Why: the sender's CPU per event is what a verification pays on top of
``emit()`` (benchmarks/FINDINGS.md section 3).  Building an event ``dict``
(:meth:`Client._build_event`) and then packing it costs about 4.3 us per event
on the 2-core benchmark machine; most of that is creating, sorting and walking
dicts whose keys are always the same.  :class:`EventEncoder` writes the same
bytes directly from the queued tuple:

* the map's keys are fixed and in canonical order, so they are pre-packed
  constants, and the map header is one byte (at most 14 entries: ``fixmap``);
* ``source`` is the same for every event of a client: packed once;
* ``type`` and ``outcome`` repeat: their packed bytes are cached (bounded);
* ids are ASCII hex of known length: a header byte plus ``str.encode``;
* ``ts`` (ns since the epoch, above 2**32) is ``uint64``: ``0xcf`` + 8 bytes;
* only ``actor``, ``attrs``, ``resource``, ``reason`` and ``duration_us``
  go through msgpack (one C call each); ``actor`` and ``attrs`` as their
  sorted items (``pack_map_pairs``): ``emit()`` already made their values
  canonical (strings, ints, bools, ``None``; attrs with a float or a list are
  stored through :func:`wire.canonical`), so only the key order is left.

The bytes are exactly those of ``wire``'s canonical packing of the built
event (``tests/sdk/test_encode.py`` checks it over random events); anything
unusual (a timestamp below 2**32, an id of an unexpected length) takes the
slow path, which builds the dict and packs it.
"""

from __future__ import annotations

import binascii
import random
from typing import Callable

import msgpack

from . import wire

_CACHE_MAX = 4096
_getrandbits = random.getrandbits
_hexlify = binascii.b2a_hex


def _key(name: str) -> bytes:
    return msgpack.packb(name, use_bin_type=True)


K_ACTOR, K_ATTRS, K_DURATION, K_ID = _key("actor"), _key("attrs"), _key("duration_us"), _key("id")
K_OUTCOME, K_REASON, K_RESOURCE, K_SEVERITY = _key("outcome"), _key("reason"), _key("resource"), _key("severity")
K_SOURCE, K_SPAN, K_TRACE, K_TS = _key("source"), _key("span_id"), _key("trace_id"), _key("ts")
K_TYPE, V_ONE = _key("type"), _key("v") + b"\x01"
_ID_HEAD = b"\xd9\x24"  # str8 of 36 bytes: a UUID string
_TRACE_HEAD = b"\xd9\x20"  # str8 of 32 bytes
_SPAN_HEAD = b"\xb0"  # fixstr of 16 bytes
_U64 = b"\xcf"
_ZERO_TRACE = b"0" * 32
_ZERO_SPAN = b"0" * 16
_MAP_HEADERS = [bytes((0x80 | n,)) for n in range(16)]  # fixmap: at most 14 entries here
_MAP8 = _MAP_HEADERS[8]


class EventEncoder:
    """Encodes queued event tuples (see :meth:`Client._emit`) as canonical msgpack maps.

    ``source`` is the client's constant ``source`` map; ``build_event`` the slow path
    (the dict the fallback sink also receives), used for anything unusual."""

    def __init__(self, source: dict, build_event: Callable[[tuple], dict]):
        self._packer = msgpack.Packer(use_bin_type=True)
        self._source = K_SOURCE + wire.pack(source)
        self._build_event = build_event
        self._strings: dict[str, bytes] = {}

    def _str(self, value: str) -> bytes:
        """Packed bytes of a repeated string (type, outcome, severity), cached."""
        packed = self._strings.get(value)
        if packed is None:
            packed = self._packer.pack(value)
            if len(self._strings) < _CACHE_MAX:
                self._strings[value] = packed
        return packed

    def encode(self, item: tuple) -> bytes:
        """The msgpack bytes of one event; raises what ``pack`` raises on an unencodable value."""
        ts, eid, etype, outcome, actor, resource, reason, attrs, severity, duration_us, tid, sid = item
        if ts.__class__ is not int or not 0xFFFFFFFF < ts <= 0xFFFFFFFFFFFFFFFF or len(eid) != 36:
            return self._packer.pack(self._build_event(item))
        if tid is None:
            # Trace ids need to be unique, not secret: the fast PRNG, as OpenTelemetry's SDK does
            # (``random`` is reseeded in a forked child by Python itself).
            h = _hexlify(_getrandbits(192).to_bytes(24, "big"))
            trace, span = h[:32], h[32:]
            if trace == _ZERO_TRACE or span == _ZERO_SPAN:
                return self._packer.pack(self._build_event(item))  # draws fresh ids from the OS
        elif tid.__class__ is int:
            trace, span = b"%032x" % tid, b"%016x" % sid
        else:
            trace, span = tid.encode(), sid.encode()
        if len(trace) != 32 or len(span) != 16:
            return self._packer.pack(self._build_event(item))
        packer = self._packer
        strings = self._strings
        # The fixed tail: source ... v (keys in canonical order).
        tail = (self._source + K_SPAN + _SPAN_HEAD + span + K_TRACE + _TRACE_HEAD + trace
                + K_TS + _U64 + ts.to_bytes(8, "big") + K_TYPE + (strings.get(etype) or self._str(etype)) + V_ONE)
        ident = K_ID + _ID_HEAD + eid.encode() + K_OUTCOME + (strings.get(outcome) or self._str(outcome))
        if actor is None and attrs is None and duration_us is None and reason is None and resource is None \
                and severity is None:
            return _MAP8 + ident + tail
        n = 8
        parts = [b"", b"", b"", b"", ident, b"", b"", b"", tail]
        if actor is not None:
            parts[1] = K_ACTOR + (packer.pack_map_pairs(sorted(actor.items())) if len(actor) > 1 else packer.pack(actor))
            n += 1
        if attrs is not None:
            parts[2] = K_ATTRS + (packer.pack_map_pairs(sorted(attrs.items())) if len(attrs) > 1 else packer.pack(attrs))
            n += 1
        if duration_us is not None:
            parts[3] = K_DURATION + packer.pack(duration_us)
            n += 1
        if reason is not None:
            parts[5] = K_REASON + packer.pack(reason)
            n += 1
        if resource is not None:
            parts[6] = K_RESOURCE + packer.pack(resource)
            n += 1
        if severity is not None:
            parts[7] = K_SEVERITY + (strings.get(severity) or self._str(severity))
            n += 1
        parts[0] = _MAP_HEADERS[n]
        return b"".join(parts)
