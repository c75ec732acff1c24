"""Event v1: the fields, their rules, and validation with precise errors.

One function, :func:`validate_event`, is the single definition of a valid
event for the Python SDK and the broker (which imports it).  It returns the
event as a new dict in canonical key order, with integral floats turned into
ints, so the result can be packed without another sort.  Every failure raises
:class:`~secbus_sdk.wire.WireError` whose code is ``invalid``,
``unsupported_version`` or ``too_large`` and whose message names the field
and the offending value.

UUIDv7 is written here by hand because the stdlib gains ``uuid.uuid7`` only
in Python 3.14; it is twelve lines of RFC 9562 section 5.7.
"""

from __future__ import annotations

import math
import os
import re
import time
from typing import Any, Mapping

from .wire import DEFAULT_LIMITS, INVALID, TOO_LARGE, UNSUPPORTED_VERSION, Limits, WireError, show

EVENT_VERSION = 1

OUTCOMES = ("success", "failure", "error", "unknown")
SEVERITIES = ("info", "low", "medium", "high", "critical")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
CATEGORIES = ("authn", "authz", "config", "perf", "security")
ACTOR_FIELDS = ("ip", "key_id", "session", "user")
BROKER_FIELDS = ("publisher", "received_ns", "seq", "tenant")

TYPE_RE = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)+")
ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
TRACE_ID_RE = re.compile(r"[0-9a-f]{32}")
SPAN_ID_RE = re.compile(r"[0-9a-f]{16}")
ATTR_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,127}")
FIELD_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_TYPE_LEN = 128
MAX_INT64 = 2**63 - 1
MAX_UINT64 = 2**64 - 1

_ID_MATCH = ID_RE.fullmatch
_ATTR_KEY_MATCH = ATTR_KEY_RE.fullmatch
_ACTOR_SET = frozenset(ACTOR_FIELDS)
_SOURCE_STRINGS = frozenset(("platform", "sdk", "service", "host"))
_OUTCOME_SET = frozenset(OUTCOMES)
_SEVERITY_SET = frozenset(SEVERITIES)


def new_event_id(ts_ns: int | None = None) -> str:
    """A UUIDv7 string: 48-bit Unix milliseconds, version 7, variant 10, random rest."""
    ms = (time.time_ns() if ts_ns is None else ts_ns) // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFFFFFFFFFF) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64 | 0b10 << 62 | (rand & 0x3FFFFFFFFFFFFFFF)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_trace_id() -> str:
    while True:
        value = os.urandom(16).hex()
        if value != "0" * 32:
            return value


def new_span_id() -> str:
    while True:
        value = os.urandom(8).hex()
        if value != "0" * 16:
            return value


def _fail(field: str, message: str, code: str = INVALID) -> WireError:
    return WireError(code, f"{field}: {message}", field)


def _check_str(field: str, value: Any, limits: Limits) -> str:
    if type(value) is not str:
        raise _fail(field, f"expected a string, got {show(value)}")
    if len(value) * 4 > limits.max_string_bytes and len(value.encode("utf-8", "surrogatepass")) > limits.max_string_bytes:
        raise _fail(field, f"string of {len(value.encode('utf-8'))} bytes exceeds the limit of {limits.max_string_bytes}")
    return value


def _check_uint(field: str, value: Any, maximum: int = MAX_UINT64) -> int:
    if type(value) is not int or value < 0 or value > maximum:
        raise _fail(field, f"expected an integer from 0 to {maximum}, got {show(value)}")
    return value


def _check_scalar(field: str, value: Any, limits: Limits) -> Any:
    kind = type(value)
    if kind is str:
        return _check_str(field, value, limits)
    if kind is float:
        if not math.isfinite(value):
            raise _fail(field, f"non-finite number {value!r} is not allowed")
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if kind is int:
        if value < -(2**63) or value > MAX_UINT64:
            raise _fail(field, f"integer {value} is outside the 64-bit range")
        return value
    if kind is bool or value is None:
        return value
    if kind is dict or kind is list:
        raise _fail(field, f"nesting is not allowed here, got {kind.__name__}")
    raise _fail(field, f"expected a string, number, boolean or nil, got {show(value)}")


def _check_value(field: str, value: Any, limits: Limits) -> Any:
    """A scalar or a list of scalars (attrs values and unknown fields)."""
    if type(value) is list:
        if len(value) > limits.max_list_items:
            raise _fail(field, f"list of {len(value)} items exceeds the limit of {limits.max_list_items}")
        return [_check_scalar(f"{field}[{i}]", item, limits) for i, item in enumerate(value)]
    return _check_scalar(field, value, limits)


def _check_map(field: str, value: Any) -> dict:
    if type(value) is not dict:
        raise _fail(field, f"expected a map, got {show(value)}")
    return value


def _check_source(value: Any, limits: Limits) -> dict:
    source = _check_map("source", value)
    out = {}
    short = limits.max_string_bytes // 4
    for key in sorted(source, key=str):  # key=str: a bytes key is rejected below, not a TypeError here
        item = source[key]
        if key in _SOURCE_STRINGS:
            out[key] = item if type(item) is str and len(item) <= short else _check_str(f"source.{key}", item, limits)
        elif key == "pid":
            out[key] = _check_uint("source.pid", item, 2**32 - 1)
        elif type(key) is str and FIELD_NAME_RE.fullmatch(key):
            out[key] = _check_scalar(f"source.{key}", item, limits)
        else:
            raise _fail("source", f"invalid key {show(key)}")
    for required in ("platform", "sdk", "service"):
        if required not in out:
            raise _fail(f"source.{required}", "required field is missing")
        if not out[required]:
            raise _fail(f"source.{required}", "must not be empty")
    return out


def _check_actor(value: Any, limits: Limits) -> dict:
    actor = _check_map("actor", value)
    out = {}
    short = limits.max_string_bytes // 4
    for key in sorted(actor, key=str):
        item = actor[key]
        if key in _ACTOR_SET:
            out[key] = item if type(item) is str and len(item) <= short else _check_str(f"actor.{key}", item, limits)
        elif type(key) is str and FIELD_NAME_RE.fullmatch(key):
            out[key] = _check_scalar(f"actor.{key}", item, limits)
        else:
            raise _fail("actor", f"invalid key {show(key)}")
    return out


def _check_attrs(value: Any, limits: Limits) -> dict:
    attrs = _check_map("attrs", value)
    if len(attrs) > limits.max_attrs:
        raise _fail("attrs", f"{len(attrs)} attrs exceed the limit of {limits.max_attrs}")
    out = {}
    short = limits.max_string_bytes // 4
    for key in sorted(attrs, key=str):
        if type(key) is not str or not _ATTR_KEY_MATCH(key):
            raise _fail("attrs", f"invalid key {show(key)}: keys match [A-Za-z_][A-Za-z0-9_.:-]{{0,127}}")
        item = attrs[key]
        if _is_plain_scalar(item, short):
            out[key] = item
        else:
            out[key] = _check_value(f"attrs.{key}", item, limits)
    return out


def _is_plain_scalar(value: Any, short: int) -> bool:
    """The common case that needs no further check: a short string, an int in
    range, a bool or nil. Anything else goes through the full check."""
    kind = type(value)
    if kind is str:
        return len(value) <= short
    if kind is int:
        return -(2**63) <= value <= MAX_UINT64
    return kind is bool or value is None


def _check_hex_id(field: str, value: Any, pattern: re.Pattern, width: int) -> str:
    if type(value) is not str or not pattern.fullmatch(value):
        raise _fail(field, f"expected {width} lowercase hex characters, got {show(value)}")
    if value == "0" * width:
        raise _fail(field, "must not be all zeros")
    return value


def _check_type(value: Any) -> str:
    if type(value) is not str or len(value) > MAX_TYPE_LEN or not TYPE_RE.fullmatch(value):
        raise _fail("type", f"expected lowercase dotted segments of [a-z0-9_] (at least two, at most {MAX_TYPE_LEN} characters), got {show(value)}")
    return value


def _check_enum(field: str, value: Any, allowed: frozenset, names: tuple) -> str:
    if type(value) is not str or value not in allowed:
        raise _fail(field, f"expected one of {', '.join(names)}, got {show(value)}")
    return value


def _check_id(value: Any, limits: Limits) -> str:
    if type(value) is not str or not _ID_MATCH(value):
        raise _fail("id", f"expected a lowercase canonical UUIDv7 string, got {show(value)}")
    return value


def _check_trace_id(value: Any, limits: Limits) -> str:
    return _check_hex_id("trace_id", value, TRACE_ID_RE, 32)


def _check_span_id(value: Any, limits: Limits) -> str:
    return _check_hex_id("span_id", value, SPAN_ID_RE, 16)


def _check_outcome(value: Any, limits: Limits) -> str:
    return _check_enum("outcome", value, _OUTCOME_SET, OUTCOMES)


def _check_severity(value: Any, limits: Limits) -> str:
    return _check_enum("severity", value, _SEVERITY_SET, SEVERITIES)


def _string_field(name: str):
    def check(value: Any, limits: Limits) -> str:
        if type(value) is str and len(value) * 4 <= limits.max_string_bytes:
            return value
        return _check_str(name, value, limits)
    return check


def _uint_field(name: str):
    def check(value: Any, limits: Limits) -> int:
        if type(value) is int and 0 <= value <= MAX_INT64:
            return value
        return _check_uint(name, value, MAX_INT64)
    return check


# One checker per known field; the loop in validate_event looks them up.
_CHECKERS = {
    "id": _check_id,
    "ts": _uint_field("ts"),
    "type": lambda value, limits: _check_type(value),
    "outcome": _check_outcome,
    "trace_id": _check_trace_id,
    "span_id": _check_span_id,
    "source": _check_source,
    "severity": _check_severity,
    "actor": _check_actor,
    "attrs": _check_attrs,
    **{name: _string_field(name) for name in ("resource", "reason", "publisher", "tenant")},
    **{name: _uint_field(name) for name in ("duration_us", "seq", "received_ns")},
}


def _check_unknown(key: str, value: Any, limits: Limits) -> Any:
    """An unknown optional field from a newer minor version: tolerated, kept."""
    if not FIELD_NAME_RE.fullmatch(key):
        raise _fail("event", f"invalid field name {show(key)}")
    return _check_value(key, value, limits)


REQUIRED_FIELDS = ("id", "outcome", "source", "span_id", "trace_id", "ts", "type", "v")
_REQUIRED_SET = frozenset(REQUIRED_FIELDS)


def validate_event(event: Any, limits: Limits = DEFAULT_LIMITS) -> dict:
    """Check one decoded event; return it in canonical key order.

    Raises :class:`WireError` with code ``unsupported_version`` for an unknown
    major ``v``, ``invalid`` for any other rule broken."""
    if type(event) is not dict:
        raise _fail("event", f"expected a map, got {show(event)}")
    version = event.get("v")
    if version is None:
        raise _fail("v", "required field is missing")
    if type(version) is not int:
        raise _fail("v", f"expected the integer 1, got {show(version)}")
    if version != EVENT_VERSION:
        raise _fail("v", f"event version {version} is not supported (this side speaks 1)", UNSUPPORTED_VERSION)
    if not _REQUIRED_SET.issubset(event):
        missing = next(name for name in REQUIRED_FIELDS if name not in event)
        raise _fail(missing, "required field is missing")
    try:
        keys = sorted(event)
    except TypeError:
        bad = next(k for k in event if type(k) is not str)
        raise _fail("event", f"invalid field name {show(bad)}") from None
    out = {}
    checkers = _CHECKERS
    for key in keys:
        if type(key) is not str:
            raise _fail("event", f"invalid field name {show(key)}")
        value = event[key]
        checker = checkers.get(key)
        if key == "v":
            out[key] = value
        elif checker is not None:
            out[key] = checker(value, limits)
        else:
            out[key] = _check_unknown(key, value, limits)
    return out


def check_event_size(packed: bytes, limits: Limits = DEFAULT_LIMITS) -> None:
    """Reject an encoded event larger than ``limits.max_event_bytes``."""
    if len(packed) > limits.max_event_bytes:
        raise WireError(TOO_LARGE, f"event: {len(packed)} bytes exceeds the limit of {limits.max_event_bytes}", "event")


def category(event_type: str) -> str:
    return event_type.split(".", 1)[0]


def validate_fields(fields: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> None:
    """Validate selected fields (for SDKs checking caller input at emit time)."""
    for key, value in fields.items():
        checker = _CHECKERS.get(key)
        if checker is not None:
            checker(value, limits)
        else:
            _check_unknown(key, value, limits)
