"""Writes a run's results: ``latest.json`` (everything, machine-readable) and
``latest.md`` (the machine, the targets with hit or miss and by how much,
then one part per section with its tables and notes)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .result import Section, fmt


def _clean(value: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def to_json(meta: dict, sections: list[Section]) -> dict:
    return _clean({"meta": meta, "sections": {s.key: s.as_dict() for s in sections}})


def to_markdown(meta: dict, sections: list[Section]) -> str:
    m = meta["machine"]
    out = [
        f"# secbus benchmark results ({meta['mode']} mode)",
        "",
        f"Run {meta['started']} to {meta['finished']} ({meta['seconds']:.0f} s), commit `{meta.get('commit', '?')}`.",
        "Figures are medians of interleaved repetitions; ratios compare with a baseline measured in the same run.",
        "This machine is shared and noisy: read ratios before absolute numbers. Load average (1, 5, 15 min) at the start "
        f"{meta['machine'].get('load_average_at_start')}, at the end {meta.get('load_average_now')} on "
        f"{meta['machine'].get('cores')} cores.",
        "What limits each missed target, and the profiles behind it: [FINDINGS.md](../FINDINGS.md).",
        "",
        "## Machine",
        "",
        "| item | value |",
        "| --- | --- |",
    ]
    out += [f"| {k} | {v} |" for k, v in m.items()]
    out += ["", "## Targets", "", "| target | limit | measured | result | note |", "| --- | --- | --- | --- | --- |"]
    any_target = False
    for s in sections:
        for t in s.targets:
            any_target = True
            result = "not measured" if t.hit is None else ("HIT" if t.hit else "MISS")
            op = ">=" if t.higher_is_better else "<="
            out.append(f"| {t.name} | {op} {fmt(t.limit)} {t.unit} | {fmt(t.value)} {t.unit} | {result} ({t.by}) | {t.shown_note} |")
    if not any_target:
        out.append("| (no target could be measured in this run) | | | | |")
    for s in sections:
        out += ["", f"## {s.title}", ""]
        status = s.status if not s.reason else f"{s.status}: {s.reason}"
        out.append(f"Status: {status}. Took {s.seconds:.0f} s.")
        for t in s.tables:
            out += ["", f"{t.title}:", "", "| " + " | ".join(t.columns) + " |", "|" + " --- |" * len(t.columns)]
            for row in t.rows:
                out.append("| " + " | ".join(fmt(v) for v in row) + " |")
        if s.notes:
            out.append("")
            out += [f"- {n}" for n in s.notes]
    out.append("")
    return "\n".join(out)


def write(directory: Path, meta: dict, sections: list[Section]) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    j = directory / "latest.json"
    md = directory / "latest.md"
    j.write_text(json.dumps(to_json(meta, sections), indent=1, sort_keys=False) + "\n", encoding="utf-8")
    md.write_text(to_markdown(meta, sections), encoding="utf-8")
    return md, j
