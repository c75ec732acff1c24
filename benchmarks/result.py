"""The shape of one benchmark section's result, shared by every module.

A section has a title, a status (``ok``, ``partial``, ``skipped`` with the
reason, or ``error`` with the message), tables for the report, raw figures for
the JSON, notes that say what limits a figure, and target checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Target:
    """One promise from the issues, checked against a measured figure."""

    name: str
    limit: float
    value: float | None
    unit: str
    higher_is_better: bool
    note: str = ""
    why: str = ""  # what limits the figure: shown when the target is missed

    @property
    def hit(self) -> bool | None:
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            return None
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit

    @property
    def by(self) -> str:
        """How far from the limit, as a percentage of the limit."""
        if self.hit is None:
            return "not measured"
        diff = (self.value - self.limit) / self.limit * 100
        if self.higher_is_better:
            return f"{diff:+.0f}%"
        return f"{-diff:+.0f}% headroom" if self.hit else f"{diff:.0f}% over"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "limit": self.limit, "value": self.value, "unit": self.unit,
                "higher_is_better": self.higher_is_better, "hit": self.hit, "by": self.by, "note": self.shown_note}

    @property
    def shown_note(self) -> str:
        if self.hit is False and self.why:
            return f"{self.note}. Limit: {self.why}" if self.note else f"Limit: {self.why}"
        return self.note


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)


@dataclass
class Section:
    key: str
    title: str
    status: str = "ok"
    reason: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    seconds: float = 0.0

    def skip(self, reason: str) -> "Section":
        self.status, self.reason = "skipped", reason
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title, "status": self.status, "reason": self.reason, "seconds": round(self.seconds, 1),
            "figures": self.figures, "notes": self.notes,
            "tables": [{"title": t.title, "columns": t.columns, "rows": t.rows} for t in self.tables],
            "targets": [t.as_dict() for t in self.targets],
        }


def fmt(value: Any, digits: int = 2) -> str:
    """Human formatting for tables: thousands separators, short floats."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
