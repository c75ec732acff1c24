"""proto/event.schema.json and proto/EVENTS.md agree with the codec.

The schema is what third-party tools (and SDKs in other languages) use to check
events without our code; EVENTS.md is what users copy from.  These tests keep
both honest: the schema is valid JSON Schema 2020-12, accepts every valid
vector, rejects every invalid vector JSON can express (naming the same field),
mirrors event.py's enums, patterns and limits, and every example event in
EVENTS.md passes both the schema and ``validate_event``.
"""

from __future__ import annotations

import json
import pathlib
import re

import jsonschema
import pytest
from jsonschema import Draft202012Validator

from secbus_sdk import wire
from secbus_sdk.event import (
    ACTOR_FIELDS,
    ATTR_KEY_RE,
    BROKER_FIELDS,
    CATEGORIES,
    FIELD_NAME_RE,
    ID_RE,
    MAX_INT64,
    MAX_TYPE_LEN,
    OUTCOMES,
    REQUIRED_FIELDS,
    SEVERITIES,
    TYPE_RE,
    validate_event,
)
from secbus.ingest.redact import DEFAULT_SECRET_WORDS
from support import vectors

PROTO = pathlib.Path(__file__).resolve().parents[2] / "proto"
SCHEMA = json.loads((PROTO / "event.schema.json").read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA)
EVENTS_MD = (PROTO / "EVENTS.md").read_text(encoding="utf-8")
VECTORS = vectors.PATHS
from_json = vectors.from_json

CATALOGUE = (
    "authn.signature.verify", "authn.key.validate", "authn.token.verify", "authn.login", "authn.mfa.verify",
    "authz.permission.check", "authz.access.denied", "authz.policy.violation",
    "config.policy.update", "config.change", "config.environment.switch",
    "perf.verification.timing", "perf.sdk.stats",
    "security.attack.detected", "security.anomaly", "security.compliance.violation",
)
# Ingest and the audit handler redact attrs whose key contains one of these (EVENTS.md section 3);
# catalogue attrs must not, or the audit log would lose them.
AUDIT_SECRET_WORDS = DEFAULT_SECRET_WORDS


def load_vectors(kind_filter):
    cases = []
    for path in VECTORS:
        case = json.loads(path.read_text(encoding="utf-8"))
        if kind_filter(case):
            cases.append(pytest.param(case, id=path.stem))
    return cases


def schema_errors(instance) -> list:
    return list(VALIDATOR.iter_errors(instance))


def points_at(error: jsonschema.ValidationError, field: str) -> bool:
    """Does a schema error concern the vector's expected field (``attrs.l[0]`` -> ``attrs``)?"""
    root = re.split(r"[.\[]", field, maxsplit=1)[0]
    path = list(error.absolute_path)
    if root == "event":
        return not path
    if path:
        return path[0] == root
    return f"'{root}'" in error.message  # a missing required property is reported on the parent


def example_events() -> list:
    blocks = re.findall(r"```json\n(.*?)```", EVENTS_MD, flags=re.S)
    return [json.loads(block) for block in blocks]


# --------------------------------------------------------------------------
# the schema itself


def test_schema_is_valid_json_schema_2020_12():
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert jsonschema.validators.validator_for(SCHEMA) is Draft202012Validator
    Draft202012Validator.check_schema(SCHEMA)


def test_schema_mirrors_the_rules_of_event_py():
    props = SCHEMA["properties"]
    assert set(SCHEMA["required"]) == set(REQUIRED_FIELDS)
    assert props["v"] == {**props["v"], "const": 1}
    assert props["outcome"]["enum"] == list(OUTCOMES)
    assert props["severity"]["enum"] == list(SEVERITIES)
    assert props["type"]["pattern"] == f"^{TYPE_RE.pattern}$"
    assert props["type"]["maxLength"] == MAX_TYPE_LEN
    assert props["id"]["pattern"] == f"^{ID_RE.pattern}$"
    assert props["attrs"]["propertyNames"]["pattern"] == f"^{ATTR_KEY_RE.pattern}$"
    assert SCHEMA["$defs"]["field_name"]["pattern"] == f"^{FIELD_NAME_RE.pattern}$"
    assert set(props["actor"]["properties"]) == set(ACTOR_FIELDS)
    assert set(BROKER_FIELDS) <= set(props)
    limits = wire.DEFAULT_LIMITS
    assert props["attrs"]["maxProperties"] == limits.max_attrs
    assert SCHEMA["$defs"]["string"]["maxLength"] == limits.max_string_bytes
    assert SCHEMA["$defs"]["value"]["anyOf"][1]["maxItems"] == limits.max_list_items
    assert SCHEMA["$defs"]["uint63"]["maximum"] == MAX_INT64


# --------------------------------------------------------------------------
# the vectors


@pytest.mark.parametrize("case", load_vectors(lambda c: c["valid"] and c["kind"] == "event"))
def test_every_valid_event_vector_satisfies_the_schema(case):
    assert [e.message for e in schema_errors(from_json(case["event"]))] == []


@pytest.mark.parametrize("case", load_vectors(lambda c: c["valid"] and c["kind"] == "pub"))
def test_every_event_of_a_valid_pub_vector_satisfies_the_schema(case):
    events = from_json(case["body"])["events"]
    assert events
    for event in events:
        assert [e.message for e in schema_errors(event)] == []


@pytest.mark.parametrize("case", load_vectors(lambda c: not c["valid"] and c["kind"] == "event" and c["event"] is not None))
def test_every_invalid_event_vector_fails_the_schema_at_its_field(case):
    """Each invalid vector JSON can express (all but the msgpack-only bin value) breaks a
    schema rule, and the schema blames the same field as the codec."""
    errors = schema_errors(from_json(case["event"]))
    assert errors, "the schema accepted an event the codec rejects"
    field = case["error"]["field"]
    assert any(points_at(e, field) for e in errors), [(list(e.absolute_path), e.message) for e in errors]


def test_the_vectors_cover_every_kind_of_rule_the_schema_expresses():
    """Patterns, enums, required fields, types, counts, ranges, lengths: each has a vector."""
    keywords = set()
    for param in load_vectors(lambda c: not c["valid"] and c["kind"] == "event" and c["event"] is not None):
        for error in schema_errors(from_json(param.values[0]["event"])):
            keywords.add(error.validator)
            keywords.update(sub.validator for sub in error.context or ())
    assert {"pattern", "enum", "const", "required", "type", "maxProperties", "maxLength", "minimum"} <= keywords


# --------------------------------------------------------------------------
# EVENTS.md


def test_events_md_has_an_example_for_every_catalogue_type():
    types = [event.get("type") for event in example_events()]
    for name in CATALOGUE:
        assert name in types, f"EVENTS.md has no example event of type {name}"
        assert f"#### `{name}`" in EVENTS_MD, f"EVENTS.md has no section for {name}"
    assert {t.split(".")[0] for t in types} == set(CATEGORIES)


@pytest.mark.parametrize("event", example_events(), ids=lambda e: e.get("type", "?"))
def test_every_events_md_example_is_valid_by_schema_and_validator(event):
    assert [e.message for e in schema_errors(event)] == []
    assert validate_event(event) == wire.canonical(event)
    assert wire.unpack(wire.pack(event)) == event


@pytest.mark.parametrize("event", example_events(), ids=lambda e: e.get("type", "?"))
def test_events_md_examples_carry_no_secret_and_no_broker_field(event):
    for key in event.get("attrs", {}):
        assert not any(word in key.lower() for word in AUDIT_SECRET_WORDS), f"attrs.{key} would be redacted by the audit handler"
    assert not set(BROKER_FIELDS) & set(event), "publishers do not send broker-added fields"


def test_events_md_example_ids_are_distinct_and_time_ordered():
    events = example_events()
    ids = [e["id"] for e in events]
    assert len(set(ids)) == len(ids)
    for event in events:
        # UUIDv7's first 48 bits are the Unix milliseconds of ts.
        assert int(event["id"].replace("-", "")[:12], 16) == event["ts"] // 1_000_000


# --------------------------------------------------------------------------
# what the schema rejects beyond the vectors


@pytest.mark.parametrize("change, field", [
    ({"source": {"platform": "", "sdk": "s", "service": "x"}}, "source"),
    ({"source": {"platform": "p", "sdk": "s", "service": "x", "pid": -1}}, "source"),
    ({"source": {"platform": "p", "sdk": "s", "service": "x", "Bad": 1}}, "source"),
    ({"actor": {"user": ["alice"]}}, "actor"),
    ({"actor": {"Role": "admin"}}, "actor"),
    ({"attrs": {"l": list(range(65))}}, "attrs"),
    ({"Custom": 1}, "event"),
    ({"custom": {"x": 1}}, "custom"),
    ({"type": "a." + "b" * 127}, "type"),
    ({"ts": 2**63}, "ts"),
    ({"duration_us": 1.5}, "duration_us"),
    ({"span_id": "0" * 16}, "span_id"),
])
def test_schema_rejects_what_the_validator_rejects(change, field):
    event = from_json(json.loads((PROTO / "vectors" / "001-minimal.json").read_text(encoding="utf-8"))["event"])
    event.update(change)
    with pytest.raises(wire.WireError):
        validate_event(event)
    errors = schema_errors(event)
    assert errors
    if field != "event":
        assert any(points_at(e, field) for e in errors), [(list(e.absolute_path), e.message) for e in errors]
