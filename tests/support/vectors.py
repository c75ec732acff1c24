"""The shared test vectors (proto/vectors/*.json) for every Python test that reads them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PATHS = sorted((Path(__file__).resolve().parents[2] / "proto" / "vectors").glob("*.json"))


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def from_json(value: Any) -> Any:
    """Undo the vectors' {"$int": "<decimal>"} convention for big integers."""
    if isinstance(value, dict):
        if set(value) == {"$int"}:
            return int(value["$int"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value
