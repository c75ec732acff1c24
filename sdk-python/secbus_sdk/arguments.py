"""Checks of caller input: ``emit()`` arguments and ``Client`` options.

The rules themselves live in the shared codec (:func:`secbus_sdk.event.validate_fields`),
so the SDK and the broker agree on what is valid; this module turns the codec's
``WireError`` into the ``ValueError`` a caller expects, naming the field and the
value.  ``emit()`` runs cheap type tests first and calls these only for unusual
input, so the full rules cost nothing on the common path.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from . import event as _event, wire

_ACTOR_KEYS = frozenset(_event.ACTOR_FIELDS)
_SHORT = wire.DEFAULT_LIMITS.max_string_bytes // 4  # chars that cannot exceed the byte limit


def check(field: str, value: Any) -> None:
    """The full rule for one field, from the shared codec; raises ValueError naming it."""
    try:
        if field == "type":
            _event.validate_fields({"type": value})
        elif field == "attrs":
            if not isinstance(value, Mapping):
                raise wire.WireError(wire.INVALID, f"attrs: expected a map, got {wire.show(value)}", "attrs")
            _event.validate_fields({"attrs": dict(value)})
        elif field == "actor":
            if not isinstance(value, Mapping):
                raise wire.WireError(wire.INVALID, f"actor: expected a map, got {wire.show(value)}", "actor")
            _event.validate_fields({"actor": dict(value)})
        else:
            _event.validate_fields({field: value})
    except wire.WireError as exc:
        raise ValueError(str(exc)) from None


def invalid(field: str, value: Any) -> None:
    """Raise the ValueError for a value a fast check refused."""
    check(field, value)
    raise ValueError(f"{field}: invalid value {wire.show(value)}")  # pragma: no cover


def actor_copy(actor: Any) -> dict:
    """A checked copy of ``actor`` (the caller may reuse its dict); known keys (one set
    comparison, in C) with short strings pass without the full rules."""
    if actor.__class__ is dict and _ACTOR_KEYS.issuperset(actor):
        for value in actor.values():
            if value.__class__ is not str or len(value) > _SHORT:
                break
        else:
            return actor.copy()
    check("actor", actor)
    return dict(actor)


def positive_int(name: str, value: Any) -> None:
    if type(value) is not int or value <= 0:
        raise ValueError(f"{name}: expected a positive integer, got {wire.show(value)}")


def positive(name: str, value: Any) -> None:
    if type(value) not in (int, float) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name}: expected a positive number of seconds, got {wire.show(value)}")


def non_negative(name: str, value: Any) -> None:
    if type(value) not in (int, float) or not value >= 0 or not math.isfinite(value):
        raise ValueError(f"{name}: expected a number >= 0, got {wire.show(value)}")
