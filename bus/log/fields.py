"""Filters on fields inside a stored event's body: ``outcome``, ``actor.user``, ``attrs.alg``...

The log's columns are ``seq``, ``tenant``, ``type`` and ``ts``; everything else an
analyst asks about ("what did alice do", "every check of key k-7") lives in the
stored msgpack body.  A :class:`FieldMatch` says which fields must equal which
text and gives a log two things: ``needles``, byte strings every matching body
contains (a store can skip the rows that lack one without decoding them), and
``matches(event)``, the exact test on a decoded event.

A value compares as its text: strings as they are, ``true``/``false`` for
booleans, decimal for integers (attrs may hold any of them).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from secbus_sdk.event import ACTOR_FIELDS, ATTR_KEY_RE

TOP_FIELDS = ("outcome", "severity", "resource", "reason")
SOURCE_FIELDS = ("host", "platform", "sdk", "service")
_NESTED = {"actor": ACTOR_FIELDS, "source": SOURCE_FIELDS}
_PATH = re.compile(r"([a-z]+)\.(.+)")
_BINARY_TEXT = re.compile(r"-?[0-9]+|true|false")  # texts of values msgpack stores in binary
_EXPECTED = ", ".join(TOP_FIELDS + ("actor.<" + "|".join(ACTOR_FIELDS) + ">",
                                    "source.<" + "|".join(SOURCE_FIELDS) + ">", "attrs.<key>"))


def as_text(value: Any) -> str | None:
    """How a stored scalar compares: itself for a string, ``true``/``false``, decimal ints."""
    if value.__class__ is str:
        return value
    if value is True or value is False:
        return "true" if value else "false"
    if value.__class__ is int:
        return str(value)
    return None


class FieldMatch:
    """Every ``path: text`` pair must hold; ``ValueError`` names a path or value that cannot."""

    def __init__(self, fields: Mapping[str, str]):
        self.fields = dict(fields)
        self.paths: list[tuple[str, str | None, str]] = []
        self.needles: list[bytes] = []
        for path, text in fields.items():
            if not isinstance(text, str):
                raise ValueError(f"fields[{path!r}]: expected a string to compare with, got {text!r}")
            top, key = _split(path)
            self.paths.append((top, key, text))
            # Any msgpack encoding of a string holds its UTF-8 bytes (bodies are stored as
            # received, so only that much about the encoding is certain).  An attr whose text
            # reads as an int or a boolean may be stored in binary: then only its key is certain.
            if top == "attrs":
                self.needles.append(key.encode())
                if _BINARY_TEXT.fullmatch(text):
                    continue
            self.needles.append(text.encode())

    def __bool__(self) -> bool:
        return bool(self.paths)

    def matches(self, event: Mapping[str, Any]) -> bool:
        for top, key, text in self.paths:
            value = event.get(top)
            if key is not None:
                value = value.get(key) if isinstance(value, dict) else None
            if as_text(value) != text:
                return False
        return True


def _split(path: Any) -> tuple[str, str | None]:
    if path in TOP_FIELDS:
        return path, None
    nested = _PATH.fullmatch(path) if isinstance(path, str) else None
    if nested:
        top, key = nested.groups()
        if key in _NESTED.get(top, ()) or (top == "attrs" and ATTR_KEY_RE.fullmatch(key)):
            return top, key
    raise ValueError(f"fields: expected one of {_EXPECTED}, got {path!r}")
