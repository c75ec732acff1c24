"""Rule conditions: field paths and operators, compiled once into predicates.

A condition table maps a *field path* to a *test*::

    type = "authn.login"                       # equals
    outcome = ["failure", "error"]             # in (a list is shorthand for in)
    "actor.ip" = { cidr = ["10.0.0.0/8"] }     # operator table: every operator must hold
    severity = { gte = "high" }                # severities compare by rank
    "attrs.attempts" = { gt = 3, lte = 10 }

Paths: a top-level field (``type``, ``outcome``, ``severity``, ``resource``,
``reason``, ``duration_us``, ``tenant``, ``publisher``...), one level into
``source.``, ``actor.`` (``actor.user``, ``actor.ip``), or ``attrs.`` where
everything after the first dot is the attribute key, dots included
(``attrs.http.method`` reads the attribute ``http.method``).  On traces the
same paths read the trace's own fields (``flags``, ``platforms``...).

Operators: ``eq``, ``ne``, ``in``, ``not_in``, ``prefix``, ``contains``
(substring of a string, member of a list), ``regex`` (Python ``re.search``:
anchor with ^ and $), ``cidr`` (one network or a list), ``gt``, ``gte``,
``lt``, ``lte`` (numbers, or severity names on ``severity``), ``not_cidr``
(an address outside every network given), ``exists``
(true or false).  A missing field fails every test except ``exists = false``
and ``ne``/``not_in``.  Mistakes (an unknown operator, a bad regex or
network, a comparison with a non-number) are errors at load time that name
the rule, the field and the value.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable

from secbus_sdk.event import SEVERITY_RANK

Predicate = Callable[[dict], bool]
MISSING = object()
OPERATORS = ("eq", "ne", "in", "not_in", "prefix", "contains", "regex", "cidr", "not_cidr", "gt", "gte", "lt", "lte", "exists")


class RuleError(ValueError):
    """A rule that cannot be loaded; the message names the rule and the field."""


def get_field(obj: dict, path: str) -> Any:
    """The value at ``path`` in an event or trace, or :data:`MISSING`."""
    if path in obj:
        return obj[path]
    head, _, rest = path.partition(".")
    if not rest:
        return MISSING
    inner = obj.get(head)
    if not isinstance(inner, dict):
        return MISSING
    if head == "attrs":
        return inner.get(rest, MISSING)
    return get_field(inner, rest)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _rank(value: Any) -> Any:
    return SEVERITY_RANK.get(value, MISSING) if isinstance(value, str) else value


def _compile_op(where: str, path: str, op: str, arg: Any) -> Predicate:
    def bad(expect: str) -> RuleError:
        return RuleError(f"{where}: {path}: operator {op!r} expects {expect}, got {arg!r}")

    is_severity = path.endswith("severity")
    if op == "eq":
        return lambda v: v is not MISSING and v == arg
    if op == "ne":
        return lambda v: v is MISSING or v != arg
    if op in ("in", "not_in"):
        if not isinstance(arg, list):
            raise bad("a list")
        choices = list(arg)
        if op == "in":
            return lambda v: v is not MISSING and (any(x in choices for x in v) if isinstance(v, (list, dict))
                                                   else v in choices)
        return lambda v: v is MISSING or (not any(x in choices for x in v) if isinstance(v, (list, dict))
                                          else v not in choices)
    if op == "prefix":
        if not isinstance(arg, str):
            raise bad("a string")
        return lambda v: isinstance(v, str) and v.startswith(arg)
    if op == "contains":
        # a string: substring; a list: member; a map (a trace's outcome counts): key
        return lambda v: (isinstance(v, str) and isinstance(arg, str) and arg in v) or (isinstance(v, (list, dict)) and arg in v)
    if op == "regex":
        if not isinstance(arg, str):
            raise bad("a regular expression string")
        try:
            pattern = re.compile(arg)
        except re.error as exc:
            raise RuleError(f"{where}: {path}: bad regex {arg!r}: {exc}") from None
        return _memoised(lambda v: pattern.search(v) is not None)
    if op in ("cidr", "not_cidr"):
        items = arg if isinstance(arg, list) else [arg]
        try:
            networks = [ipaddress.ip_network(x, strict=False) for x in items]
        except (ValueError, TypeError):
            raise bad("a network such as '10.0.0.0/8' or a list of them") from None

        inside = op == "cidr"

        def in_networks(v: Any) -> bool:
            if not isinstance(v, str):
                return False
            try:
                address = ipaddress.ip_address(v)
            except ValueError:
                return False  # not an address: neither inside nor outside
            return any(address in net for net in networks if net.version == address.version) == inside
        return in_networks
    if op in ("gt", "gte", "lt", "lte"):
        if is_severity and isinstance(arg, str):
            if arg not in SEVERITY_RANK:
                raise bad("a severity (" + ", ".join(SEVERITY_RANK) + ")")
            limit, convert = SEVERITY_RANK[arg], _rank
        elif _is_number(arg):
            limit, convert = arg, (lambda v: v)
        else:
            raise bad("a number" + (" or a severity" if is_severity else ""))
        compare = {"gt": lambda a: a > limit, "gte": lambda a: a >= limit,
                   "lt": lambda a: a < limit, "lte": lambda a: a <= limit}[op]

        def numeric(v: Any) -> bool:
            v = convert(v)
            return _is_number(v) and compare(v)
        return numeric
    if op == "exists":
        if not isinstance(arg, bool):
            raise bad("true or false")
        return lambda v: (v is not MISSING) == arg
    raise RuleError(f"{where}: {path}: unknown operator {op!r}; known: {', '.join(OPERATORS)}")


MEMO_ENTRIES = 4096  # distinct values remembered per regex test
MEMO_CHARS = 256  # longer strings are matched every time


def _memoised(test: Callable[[str], bool]) -> Callable[[Any], bool]:
    """``test`` on strings, its answers remembered: the values a rule tests with a regex
    (event types, mostly) repeat, and a dict lookup costs a fraction of a search.
    Bounded: the first ``MEMO_ENTRIES`` strings up to ``MEMO_CHARS`` long."""
    answers: dict[str, bool] = {}

    def memoised(v: Any) -> bool:
        if not isinstance(v, str):
            return False
        answer = answers.get(v)
        if answer is None:
            answer = test(v)
            if len(answers) < MEMO_ENTRIES and len(v) <= MEMO_CHARS:
                answers[v] = answer
        return answer
    return memoised


def compile_test(where: str, path: str, spec: Any) -> Callable[[Any], bool]:
    if isinstance(spec, dict):
        if not spec:
            raise RuleError(f"{where}: {path}: empty operator table")
        tests = [_compile_op(where, path, op, arg) for op, arg in spec.items()]
        if len(tests) == 1:
            return tests[0]
        return lambda v: all(t(v) for t in tests)
    if isinstance(spec, list):
        return _compile_op(where, path, "in", spec)
    return _compile_op(where, path, "eq", spec)


def compile_where(where: str, table: Any) -> Predicate:
    """A predicate over an event (or trace) from a condition table; ``{}`` matches all."""
    if table is None:
        return lambda obj: True
    if not isinstance(table, dict):
        raise RuleError(f"{where}: expected a table of field = test, got {table!r}")
    # Top-level fields first (cheapest lookups), then nested paths.
    tests = sorted(((path, compile_test(where, path, spec)) for path, spec in table.items()),
                   key=lambda item: "." in item[0])

    def predicate(obj: dict) -> bool:
        for path, test in tests:
            if not test(obj[path] if path in obj else get_field(obj, path)):
                return False
        return True
    return predicate
