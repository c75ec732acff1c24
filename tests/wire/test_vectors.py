"""Every vector in proto/vectors: the Python codec encodes to exactly its bytes,
decodes them back to its value, and rejects invalid ones with the expected code."""

import pytest

from secbus_sdk import wire
from secbus_sdk.event import validate_event
from support import vectors

VECTORS = vectors.PATHS
from_json = vectors.from_json
load = vectors.load


def test_there_are_at_least_thirty_vectors_of_both_kinds():
    cases = [load(p) for p in VECTORS]
    assert len(cases) >= 30
    assert sum(c["valid"] for c in cases) >= 10
    assert sum(not c["valid"] for c in cases) >= 20


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vector(path):
    case = load(path)
    data = bytes.fromhex(case["msgpack"])
    limits = wire.DEFAULT_LIMITS.with_overrides(case.get("limits", {}))
    value = from_json(case.get("event", case.get("body")))
    if value is not None:
        assert wire.pack(value) == data, "encoding differs from the vector's bytes"
    if case["kind"] == "pub":
        check = lambda: wire.check_pub(wire.unpack(data, limits), len(data), limits)  # noqa: E731
    else:
        check = lambda: validate_event(wire.unpack(data, limits), limits)  # noqa: E731
    if case["valid"]:
        decoded = wire.unpack(data, limits)
        assert decoded == value
        check()
        if case["kind"] == "event":
            assert wire.pack(validate_event(decoded)) == data
    else:
        with pytest.raises(wire.WireError) as caught:
            check()
        assert caught.value.code == case["error"]["code"]
        assert caught.value.field == case["error"]["field"]
        assert case["error"]["field"].split("[")[0].split(".")[0] in str(caught.value)
