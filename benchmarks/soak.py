"""Placeholder until the component it measures lands (see benchmarks/__init__.py)."""

from .config import Config
from .result import Section


def run(cfg: Config) -> Section:
    return Section("soak", "soak").skip("not written yet")
