"""Alert rules: the TOML file format, loaded into checked :class:`Rule` objects.

A rules file is a list of ``[[rule]]`` tables (docs/alerting.md is the
reference, ``default_rules.toml`` the shipped set).  Every key is checked at
load time; a mistake stops the alerting handler at startup with a message
naming the file, the rule and the key, instead of a rule that silently never
fires.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from secbus_sdk.event import SEVERITIES

from .conditions import Predicate, RuleError, compile_test, compile_where

KINDS = ("match", "threshold", "distinct", "sequence", "trace")
DEFAULT_SUPPRESS = 300.0


@dataclass
class Step:
    where: Predicate
    count: int = 1


@dataclass
class Escalation:
    count: int
    severity: str


@dataclass
class Rule:
    name: str
    kind: str
    severity: str                  # a severity name, or "event" (match rules: take the event's)
    where: Predicate
    summary: str = ""
    description: str = ""
    group_by: list[str] = field(default_factory=list)
    window_ns: int = 0
    threshold: int = 1
    distinct: str = ""
    steps: list[Step] = field(default_factory=list)
    trace_where: Predicate | None = None
    require: list[Predicate] = field(default_factory=list)
    distinct_platforms: bool = False
    suppress_ns: int = int(DEFAULT_SUPPRESS * 1e9)
    escalate: list[Escalation] = field(default_factory=list)
    type_test: Any = None          # the where's test on ``type`` alone, to pre-select rules by type


_COMMON = {"name", "kind", "severity", "where", "summary", "description", "group_by", "suppress", "enabled", "escalate"}
_BY_KIND = {
    "match": set(),
    "threshold": {"window", "threshold"},
    "distinct": {"window", "threshold", "distinct"},
    "sequence": {"window", "steps"},
    "trace": {"trace_where", "require", "distinct_platforms"},
}


def _seconds(where: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise RuleError(f"{where}: {key}: expected a positive number of seconds, got {value!r}")
    return int(value * 1_000_000_000)


def _count(where: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RuleError(f"{where}: {key}: expected an integer >= 1, got {value!r}")
    return value


def _severity(where: str, value: Any, allow_event: bool) -> str:
    allowed = SEVERITIES + (("event",) if allow_event else ())
    if value not in allowed:
        raise RuleError(f"{where}: severity: expected one of {', '.join(allowed)}, got {value!r}")
    return value


def parse_rule(raw: Any, origin: str) -> Rule | None:
    """One ``[[rule]]`` table to a :class:`Rule` (None when ``enabled = false``)."""
    if not isinstance(raw, dict):
        raise RuleError(f"{origin}: each rule must be a table, got {raw!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise RuleError(f"{origin}: a rule without a name: {sorted(raw)}")
    where = f"{origin}: rule {name!r}"
    kind = raw.get("kind")
    if kind not in KINDS:
        raise RuleError(f"{where}: kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    unknown = set(raw) - _COMMON - _BY_KIND[kind]
    if unknown:
        raise RuleError(f"{where}: unknown key(s) for a {kind} rule: {', '.join(sorted(unknown))}")
    if raw.get("enabled", True) is False:
        return None
    group_by = raw.get("group_by", [])
    if not isinstance(group_by, list) or not all(isinstance(g, str) and g for g in group_by):
        raise RuleError(f"{where}: group_by: expected a list of field paths, got {group_by!r}")
    rule = Rule(name=name, kind=kind, severity=_severity(where, raw.get("severity"), kind == "match"),
                where=compile_where(f"{where}: where", raw.get("where")),
                summary=str(raw.get("summary", "")), description=str(raw.get("description", "")),
                group_by=group_by)
    where_table = raw.get("where")
    if isinstance(where_table, dict) and "type" in where_table:
        rule.type_test = compile_test(f"{where}: where", "type", where_table["type"])
    if kind in ("threshold", "distinct", "sequence"):
        if "window" not in raw:
            raise RuleError(f"{where}: window: required for a {kind} rule (seconds)")
        rule.window_ns = _seconds(where, "window", raw["window"])
    if kind in ("threshold", "distinct"):
        if "threshold" not in raw:
            raise RuleError(f"{where}: threshold: required for a {kind} rule")
        rule.threshold = _count(where, "threshold", raw["threshold"])
    if kind == "distinct":
        if not isinstance(raw.get("distinct"), str) or not raw["distinct"]:
            raise RuleError(f"{where}: distinct: expected the field path whose values are counted, got {raw.get('distinct')!r}")
        rule.distinct = raw["distinct"]
    if kind == "sequence":
        steps = raw.get("steps")
        if not isinstance(steps, list) or len(steps) < 2:
            raise RuleError(f"{where}: steps: expected a list of at least two step tables, got {steps!r}")
        type_tests = []
        for i, step in enumerate(steps):
            if not isinstance(step, dict) or set(step) - {"where", "count"}:
                raise RuleError(f"{where}: steps[{i}]: expected a table with where and optional count, got {step!r}")
            rule.steps.append(Step(compile_where(f"{where}: steps[{i}].where", step.get("where")),
                                   _count(where, f"steps[{i}].count", step.get("count", 1))))
            step_where = step.get("where")
            type_tests.append(compile_test(f"{where}: steps[{i}].where", "type", step_where["type"])
                              if isinstance(step_where, dict) and "type" in step_where else None)
        if "where" not in raw:
            # Without its own where, a sequence sees only events that could be one of its steps.
            step_wheres = [st.where for st in rule.steps]
            base = rule.where
            rule.where = lambda event: base(event) and any(w(event) for w in step_wheres)
            if all(t is not None for t in type_tests):
                rule.type_test = lambda value: any(t(value) for t in type_tests)
    if kind == "trace":
        rule.trace_where = compile_where(f"{where}: trace_where", raw.get("trace_where"))
        require = raw.get("require", [])
        if not isinstance(require, list):
            raise RuleError(f"{where}: require: expected a list of condition tables, got {require!r}")
        rule.require = [compile_where(f"{where}: require[{i}]", r) for i, r in enumerate(require)]
        rule.distinct_platforms = raw.get("distinct_platforms", False)
        if not isinstance(rule.distinct_platforms, bool):
            raise RuleError(f"{where}: distinct_platforms: expected true or false, got {rule.distinct_platforms!r}")
    suppress = raw.get("suppress", max(DEFAULT_SUPPRESS, rule.window_ns / 1e9))
    rule.suppress_ns = 0 if suppress == 0 else _seconds(where, "suppress", suppress)
    escalate = raw.get("escalate", [])
    if not isinstance(escalate, list):
        raise RuleError(f"{where}: escalate: expected a list of {{count, severity}} tables, got {escalate!r}")
    for i, step in enumerate(escalate):
        if not isinstance(step, dict) or set(step) != {"count", "severity"}:
            raise RuleError(f"{where}: escalate[{i}]: expected a table with count and severity, got {step!r}")
        rule.escalate.append(Escalation(_count(where, f"escalate[{i}].count", step["count"]),
                                        _severity(f"{where}: escalate[{i}]", step["severity"], False)))
    rule.escalate.sort(key=lambda e: e.count)
    return rule


def parse_rules(text: str, origin: str) -> list[Rule]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{origin}: not valid TOML: {exc}") from None
    unknown = set(doc) - {"rule"}
    if unknown:
        raise RuleError(f"{origin}: unknown top-level key(s) {', '.join(sorted(unknown))}; rules go in [[rule]] tables")
    raw_rules = doc.get("rule", [])
    if not isinstance(raw_rules, list):
        raise RuleError(f"{origin}: rule: expected [[rule]] tables")
    rules, seen = [], set()
    for raw in raw_rules:
        rule = parse_rule(raw, origin)
        if rule is None:
            continue
        if rule.name in seen:
            raise RuleError(f"{origin}: rule {rule.name!r} is defined twice")
        seen.add(rule.name)
        rules.append(rule)
    return rules


def default_rules_text() -> str:
    return resources.files(__package__).joinpath("default_rules.toml").read_text(encoding="utf-8")


def load_rules(path: Path | None = None, include_defaults: bool = True) -> list[Rule]:
    """The default rule set and/or the rules of ``path``; names must be unique across both."""
    rules: list[Rule] = []
    if include_defaults:
        rules += parse_rules(default_rules_text(), "default_rules.toml")
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise RuleError(f"rules file {str(path)!r}: cannot read it ({exc.strerror})") from None
        extra = parse_rules(text, str(path))
        names = {r.name for r in rules}
        for rule in extra:
            if rule.name in names:
                raise RuleError(f"{path}: rule {rule.name!r} is also a default rule; rename it, or set "
                                f"default_rules = false and copy the defaults you want")
        rules += extra
    return rules


def main(argv: list[str] | None = None) -> int:
    """``python -m secbus.handlers.alerting.rules [FILE]``: check a rules file
    (with the defaults, as the broker would load it) before deploying it.
    Prints each rule or the first mistake; exit 0 or 1."""
    import argparse
    import sys
    parser = argparse.ArgumentParser(prog="python -m secbus.handlers.alerting.rules",
                                     description="Check an alert rules file (docs/alerting.md).")
    parser.add_argument("file", nargs="?", help="a rules file (omit to check the default rules alone)")
    parser.add_argument("--no-defaults", action="store_true", help="as with default_rules = false")
    args = parser.parse_args(argv)
    try:
        rules = load_rules(Path(args.file) if args.file else None, include_defaults=not args.no_defaults)
    except RuleError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    for rule in rules:
        print(f"{rule.name:40} {rule.kind:10} {rule.severity:9} {rule.description}")
    print(f"ok: {len(rules)} rules")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
