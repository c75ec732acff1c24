"""Regenerate proto/vectors/*.json from the cases below.

Each vector is one JSON file: the value as JSON, its canonical msgpack bytes
in hex, and for invalid ones the expected error code and field.  Integers
beyond +-(2**53 - 1), which JSON parsers in JavaScript cannot hold, are written
as {"$int": "<decimal>"}.  Run: .venv/bin/python proto/make_vectors.py
"""

from __future__ import annotations

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "sdk-python"))

from secbus_sdk import wire  # noqa: E402
from secbus_sdk.event import validate_event  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent / "vectors"
SAFE = 2**53 - 1


def base(**changes):
    event = {
        "v": 1,
        "id": "0193a3c4-5e6f-7a1b-8c2d-3e4f5a6b7c8d",
        "ts": 1763900000123456789,
        "type": "authn.signature.verify",
        "outcome": "success",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
        "source": {"platform": "python", "sdk": "secbus-sdk/0.1.0", "service": "payments"},
    }
    for key, value in changes.items():
        if value is DROP:
            event.pop(key, None)
        else:
            event[key] = value
    return event


DROP = object()

VALID = [
    ("minimal", "only the required fields", base()),
    ("full", "every optional field", base(
        severity="high", actor={"user": "alice", "key_id": "k-2024-01", "ip": "203.0.113.7", "session": "s-91"},
        resource="invoice/42", reason="ok", duration_us=182,
        attrs={"alg": "Ed25519", "bytes": 256, "cached": False, "score": 0.75, "tags": ["a", "b"]},
        source={"platform": "node", "sdk": "@secbus/sdk/0.1.0", "service": "web", "host": "web-1", "pid": 4242})),
    ("attrs-empty", "an empty attrs map", base(attrs={})),
    ("attrs-full", "64 attrs, the default limit", base(attrs={f"k{i:02d}": i for i in range(64)})),
    ("attrs-nil-bool", "nil and booleans in attrs", base(attrs={"a": None, "b": True, "c": False})),
    ("attrs-list-mixed", "a list of mixed scalars", base(attrs={"l": [1, "two", 3.5, None, True, -7]})),
    ("attrs-list-empty", "an empty list", base(attrs={"l": []})),
    ("int-edges-positive", "smallest integer forms: fixint, uint8, uint16, uint32, uint64",
     base(attrs={"a": 0, "b": 127, "c": 128, "d": 255, "e": 256, "f": 65535, "g": 65536, "h": 4294967295, "i": 4294967296, "j": 2**64 - 1})),
    ("int-edges-negative", "negative fixint, int8, int16, int32, int64",
     base(attrs={"a": -1, "b": -32, "c": -33, "d": -128, "e": -129, "f": -32768, "g": -32769, "h": -(2**31), "i": -(2**31) - 1, "j": -(2**63)})),
    ("float-integral", "a float with an integral value is written as an integer", base(attrs={"f": 2.0, "g": -0.5, "h": 1e300})),
    ("duration-large", "duration_us in uint64 form", base(duration_us=2**40)),
    ("ts-max", "the largest ts (int64 max)", base(ts=2**63 - 1)),
    ("unicode", "non-ASCII strings: str8, multibyte characters", base(resource="fichier/é/日本語/🔐", actor={"user": "Ærøskøbing"}, attrs={"note": "ü" * 20})),
    ("string-limit", "a string of exactly 4096 bytes", base(resource="r" * 4096)),
    ("str16", "a string needing str16 (256 bytes)", base(reason="x" * 256)),
    ("unknown-field", "an unknown optional field from a newer minor version is kept", base(risk_score=7)),
    ("broker-stamped", "an event as stored, with the broker's fields", base(seq=1, received_ns=1763900000200000000, publisher="anonymous", tenant="default")),
    ("outcome-failure-critical", "failure with critical severity", base(type="security.attack.detected", outcome="failure", severity="critical", reason="sqli")),
    ("type-many-segments", "a type with four segments and digits", base(type="authz.v2.policy_9.violation")),
]

INVALID = [
    ("trace-id-uppercase", base(trace_id="4BF92F3577B34DA6A3CE929D0E0E4736"), "invalid", "trace_id"),
    ("trace-id-zero", base(trace_id="0" * 32), "invalid", "trace_id"),
    ("trace-id-short", base(trace_id="4bf92f3577b34da6"), "invalid", "trace_id"),
    ("span-id-bad", base(span_id="00f067aa0ba902bz"), "invalid", "span_id"),
    ("span-id-zero", base(span_id="0" * 16), "invalid", "span_id"),
    ("id-not-uuid7", base(id="0193a3c4-5e6f-4a1b-8c2d-3e4f5a6b7c8d"), "invalid", "id"),
    ("id-uppercase", base(id="0193A3C4-5E6F-7A1B-8C2D-3E4F5A6B7C8D"), "invalid", "id"),
    ("version-unknown", base(v=2), "unsupported_version", "v"),
    ("version-string", base(v="1"), "invalid", "v"),
    ("missing-type", base(type=DROP), "invalid", "type"),
    ("missing-source", base(source=DROP), "invalid", "source"),
    ("missing-source-service", base(source={"platform": "python", "sdk": "x"}), "invalid", "source.service"),
    ("ts-string", base(ts="1763900000123456789"), "invalid", "ts"),
    ("ts-negative", base(ts=-1), "invalid", "ts"),
    ("outcome-unknown", base(outcome="ok"), "invalid", "outcome"),
    ("severity-unknown", base(severity="urgent"), "invalid", "severity"),
    ("type-uppercase", base(type="Authn.Login"), "invalid", "type"),
    ("type-one-segment", base(type="login"), "invalid", "type"),
    ("string-too-long", base(resource="r" * 4097), "invalid", "resource"),
    ("too-many-attrs", base(attrs={f"k{i:02d}": i for i in range(65)}), "invalid", "attrs"),
    ("attrs-nested-map", base(attrs={"m": {"x": 1}}), "invalid", "attrs.m"),
    ("attrs-nested-list", base(attrs={"l": [[1]]}), "invalid", "attrs.l[0]"),
    ("attrs-bad-key", base(attrs={"bad key": 1}), "invalid", "attrs"),
    ("actor-not-map", base(actor="alice"), "invalid", "actor"),
    ("duration-negative", base(duration_us=-5), "invalid", "duration_us"),
    ("event-not-map", ["not", "an", "event"], "invalid", "event"),
]


def to_json(value):
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if -SAFE <= value <= SAFE else {"$int": str(value)}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value


def write(index, name, record):
    path = OUT / f"{index:03d}-{name}.json"
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main():
    OUT.mkdir(exist_ok=True)
    for old in OUT.glob("*.json"):
        old.unlink()
    index = 0
    for name, description, event in VALID:
        index += 1
        canonical = validate_event(event)
        write(index, name, {"name": name, "description": description, "kind": "event", "valid": True,
                            "event": to_json(canonical), "msgpack": wire.pack(event).hex()})
    for name, event, code, field in INVALID:
        index += 1
        try:
            validate_event(wire.unpack(wire.pack(event)))
        except wire.WireError as err:
            assert (err.code, err.field) == (code, field), (name, err.code, err.field, err)
        else:
            raise AssertionError(f"{name} validated")
        write(index, name, {"name": name, "description": f"rejected: {field}", "kind": "event", "valid": False,
                            "event": to_json(event), "msgpack": wire.pack(event).hex(),
                            "error": {"code": code, "field": field}})
    # Cases JSON cannot express: given as bytes only.
    index += 1
    event = base()
    event["attrs"] = {"b": b"x"}
    data = wire.msgpack.packb(wire.canonical(event), use_bin_type=True)
    try:
        validate_event(wire.unpack(data))
    except wire.WireError as err:
        assert (err.code, err.field) == ("invalid", "attrs.b"), (err.code, err.field)
    write(index, "attrs-bin-value", {"name": "attrs-bin-value", "description": "a msgpack bin value where a string belongs",
                                     "kind": "event", "valid": False, "event": None, "msgpack": data.hex(),
                                     "error": {"code": "invalid", "field": "attrs.b"}})
    # Request-level: PUB bodies checked against (reduced) limits.
    batch = {"seq": 7, "events": [base(), base(), base()]}
    index += 1
    write(index, "pub-ok", {"name": "pub-ok", "description": "a PUB body of three events", "kind": "pub", "valid": True,
                            "body": to_json(wire.canonical(batch)), "msgpack": wire.pack(batch).hex(), "limits": {"max_batch_events": 3}})
    index += 1
    write(index, "pub-batch-over-limit", {"name": "pub-batch-over-limit", "description": "more events than max_batch_events",
                                          "kind": "pub", "valid": False, "body": to_json(wire.canonical(batch)),
                                          "msgpack": wire.pack(batch).hex(), "limits": {"max_batch_events": 2},
                                          "error": {"code": "too_large", "field": "events"}})
    index += 1
    write(index, "pub-seq-missing", {"name": "pub-seq-missing", "description": "a PUB body without seq",
                                     "kind": "pub", "valid": False, "body": {"events": []},
                                     "msgpack": wire.pack({"events": []}).hex(), "error": {"code": "malformed", "field": "seq"}})
    print(f"wrote {index} vectors to {OUT}")


if __name__ == "__main__":
    main()
