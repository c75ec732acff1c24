"""Broker-test fixtures: the third-party ``recorder`` handler, installed as a real distribution."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

PLUGIN_DIR = Path(__file__).resolve().parent / "plugins" / "recorder"


@pytest.fixture(scope="session")
def recorder_installed() -> str:
    """pip-install tests/broker/plugins/recorder (editable, no deps) once, so the
    broker finds it through the ``secbus.handlers`` entry point like any plugin."""
    names = {ep.name for ep in entry_points(group="secbus.handlers")}
    if not {"recorder", "stored-recorder", "typo"} <= names:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "-e", str(PLUGIN_DIR)],
            check=True,
        )
    return "recorder"


class Recording:
    """What the recorder handler wrote (one JSON object per hook call)."""

    def __init__(self, path: Path):
        self.path = path

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def delivered_seqs(self) -> list[int]:
        return [s for r in self.records() if r["hook"] == "on_events" and not r.get("failed") for s in r["seqs"]]

    def traces(self) -> list[dict]:
        return [r["trace"] for r in self.records() if r["hook"] == "on_trace"]

    def alerts(self) -> list[dict]:
        return [r["alert"] for r in self.records() if r["hook"] == "on_alert"]

    def hooks(self) -> list[str]:
        return [r["hook"] for r in self.records()]


@pytest.fixture
def recording(tmp_path) -> Recording:
    return Recording(tmp_path / "recorder.jsonl")
