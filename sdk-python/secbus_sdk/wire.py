"""Wire protocol v1: frames, canonical msgpack, limits and error codes.

Every request and reply is three ZeroMQ frames: ``SECBUS1``, a command, a
msgpack body (``proto/PROTOCOL.md``).  Both SDKs and the broker must produce
the same bytes for the same value, so :func:`pack` writes *canonical* msgpack:
map keys sorted by their UTF-8 bytes, integers in their smallest form, floats
with an integral value written as integers (JavaScript cannot tell ``1.0``
from ``1``), strings always as ``str``, never ``bin`` or ext types.

msgpack-python does the encoding and decoding; this module only sorts keys,
normalises numbers and turns every decoding failure into a :class:`WireError`
with a protocol code, so callers handle one exception type.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Iterable, Mapping

import msgpack

MAGIC = b"SECBUS1"
PROTOCOL_VERSION = 1

PUB = b"PUB"
ACK = b"ACK"
ERR = b"ERR"
PING = b"PING"
PONG = b"PONG"
COMMANDS = frozenset({PUB, ACK, ERR, PING, PONG})

# Request-level error codes (ERR replies).
MALFORMED = "malformed"
TOO_LARGE = "too_large"
UNSUPPORTED_VERSION = "unsupported_version"
UNAUTHORIZED = "unauthorized"
OVERLOADED = "overloaded"
# Per-event rejection codes (inside ACK.rejected); shares some names above.
INVALID = "invalid"

_MAX_SAFE_FLOAT_INT = 2**53


@dataclass(frozen=True)
class Limits:
    """Size limits on everything a peer sends; all configurable on the broker.

    Defaults follow the contract: an event of 64 KiB, a batch of 1000 events or
    1 MiB, strings of 4 KiB (UTF-8 bytes), 64 attrs per event.  A frame may be a
    little larger than a batch to leave room for the envelope.
    """

    max_event_bytes: int = 64 * 1024
    max_batch_events: int = 1000
    max_batch_bytes: int = 1024 * 1024
    max_string_bytes: int = 4 * 1024
    max_attrs: int = 64
    max_list_items: int = 64

    @property
    def max_frame_bytes(self) -> int:
        return self.max_batch_bytes + 64 * 1024

    def with_overrides(self, overrides: Mapping[str, int]) -> "Limits":
        known = {f.name for f in fields(self)}
        for name in overrides:
            if name not in known:
                raise ValueError(f"limits: unknown limit {name!r}; known: {sorted(known)}")
        return replace(self, **dict(overrides))


DEFAULT_LIMITS = Limits()


class WireError(Exception):
    """A protocol violation with its code (``malformed``, ``invalid``...) and the
    field it concerns, if any.  ``str()`` gives a message naming field and value."""

    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.field = field
        self.message = message

    def as_list(self) -> list:
        return [self.code, self.message]


def show(value: Any, width: int = 60) -> str:
    """A short, safe rendering of a bad value for an error message."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


# --------------------------------------------------------------------------
# canonical msgpack


def canonical(value: Any) -> Any:
    """Return ``value`` with maps in sorted key order and integral floats as ints."""
    kind = type(value)
    if kind is dict:
        return {k: canonical(value[k]) for k in sorted(value, key=_key_bytes)}
    if kind is list or kind is tuple:
        return [canonical(v) for v in value]
    if kind is float and value.is_integer() and abs(value) < _MAX_SAFE_FLOAT_INT:
        return int(value)
    return value


def _key_bytes(key: Any) -> bytes:
    if type(key) is not str:
        raise WireError(MALFORMED, f"map key: expected a string, got {show(key)}")
    return key.encode("utf-8")


def pack(value: Any) -> bytes:
    """Canonical msgpack bytes of ``value`` (see the module docstring)."""
    return msgpack.packb(canonical(value), use_bin_type=True)


def pack_ordered(value: Any) -> bytes:
    """msgpack bytes of a value whose maps are already in canonical order.

    The hot paths build their dicts in sorted key order, so they skip the
    recursive sort of :func:`pack`."""
    return msgpack.packb(value, use_bin_type=True)


def _no_ext(code: int, data: bytes) -> Any:
    raise WireError(MALFORMED, f"body: msgpack ext type {code} is not allowed")


def unpack(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Decode one msgpack value, bounded by ``limits``.

    The body size is checked first; msgpack-python then bounds every declared
    length by the input size, so a small frame cannot make it allocate much.
    Element limits (strings, attrs, batch size) are checked afterwards by the
    callers, which know whether a violation rejects one event or the request.
    Truncated input, trailing bytes, ext types, non-string map keys and
    nesting deeper than msgpack's stack all raise :class:`WireError` (``malformed`` or ``too_large``)."""
    if len(data) > limits.max_frame_bytes:
        raise WireError(TOO_LARGE, f"body: {len(data)} bytes exceeds the limit of {limits.max_frame_bytes}")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            ext_hook=_no_ext,
            max_ext_len=0,
        )
    except WireError:
        raise
    except msgpack.ExtraData:
        raise WireError(MALFORMED, "body: trailing bytes after the msgpack value") from None
    except msgpack.StackError:
        raise WireError(MALFORMED, "body: msgpack nesting is too deep") from None
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise WireError(MALFORMED, f"body: not valid msgpack ({exc})") from None
    return value


# --------------------------------------------------------------------------
# frames


def encode_frames(command: bytes, body: Mapping[str, Any]) -> list[bytes]:
    """The three frames of a request or reply."""
    return [MAGIC, command, pack(body)]


def decode_frames(frames: Iterable[bytes], limits: Limits = DEFAULT_LIMITS) -> tuple[bytes, dict]:
    """Split and decode ``[MAGIC, command, body]``; raise :class:`WireError`."""
    frames = list(frames)
    if len(frames) != 3:
        raise WireError(MALFORMED, f"frames: expected 3 (SECBUS1, command, body), got {len(frames)}")
    magic, command, body = (bytes(f) for f in frames)
    if magic != MAGIC:
        if magic.startswith(b"SECBUS") and magic[6:].isdigit():
            raise WireError(UNSUPPORTED_VERSION, f"frame 0: protocol {magic.decode()} is not supported; this broker speaks SECBUS1")
        raise WireError(MALFORMED, f"frame 0: expected b'SECBUS1', got {show(magic)}")
    if command not in COMMANDS:
        raise WireError(MALFORMED, f"frame 1: unknown command {show(command)}; expected one of PUB, ACK, ERR, PING, PONG")
    value = unpack(body, limits)
    if type(value) is not dict:
        raise WireError(MALFORMED, f"body: expected a map, got {type(value).__name__}")
    return command, value


def check_pub(body: Mapping[str, Any], body_bytes: int, limits: Limits = DEFAULT_LIMITS) -> tuple[int, list]:
    """Check a PUB body's envelope; return ``(seq, events)``.

    Events themselves are validated one by one (a bad event is rejected inside
    the ACK, the rest of the batch still counts)."""
    seq = body.get("seq")
    if type(seq) is not int or seq < 0:
        raise WireError(MALFORMED, f"seq: expected an unsigned integer, got {show(seq)}", "seq")
    events = body.get("events")
    if type(events) is not list:
        raise WireError(MALFORMED, f"events: expected an array of events, got {show(events)}", "events")
    if len(events) > limits.max_batch_events:
        raise WireError(TOO_LARGE, f"events: batch of {len(events)} events exceeds the limit of {limits.max_batch_events}", "events")
    if body_bytes > limits.max_batch_bytes:
        raise WireError(TOO_LARGE, f"events: batch of {body_bytes} bytes exceeds the limit of {limits.max_batch_bytes}", "events")
    return seq, events
