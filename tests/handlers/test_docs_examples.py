"""The examples in the handler docs are valid as written: every TOML block
parses, and every rule example in docs/alerting.md loads as a rule."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from secbus.handlers.alerting.rules import parse_rules

DOCS = Path(__file__).resolve().parents[2] / "docs"


def blocks(name: str, language: str) -> list[str]:
    text = (DOCS / name).read_text(encoding="utf-8")
    return [body for lang, body in re.findall(r"```(\w+)\n(.*?)```", text, re.S) if lang == language]


@pytest.mark.parametrize("name", ["alerting.md", "audit.md", "handlers.md"])
def test_every_toml_block_parses(name):
    for block in blocks(name, "toml"):
        tomllib.loads(block)


def test_every_rule_example_in_alerting_md_loads():
    examples = [b for b in blocks("alerting.md", "toml") if b.lstrip().startswith("[[rule]]")]
    assert len(examples) >= 6
    for block in examples:
        [rule] = parse_rules(block, "docs/alerting.md")
        assert rule.name
