"""Which parts of secbus exist in this checkout, and how to start them.

The benchmark suite measures components that other engineers build in
parallel; a section whose component is missing is reported as *skipped* with
the reason instead of failing the whole run. Brokers are started through the
shared test support (``tests/support/broker.py``: a real ``secbus serve``
subprocess on free ports in a temp data dir), so the benchmarks run exactly
what the tests run.
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SDK_JS = ROOT / "sdk-js" / "src" / "index.js"
NODE_SCRIPT = Path(__file__).resolve().parent / "node" / "sdk_bench.mjs"


def python_client():
    """``secbus_sdk.Client`` or None."""
    try:
        from secbus_sdk import Client  # type: ignore[attr-defined]
    except ImportError:
        return None
    return Client


def node() -> str | None:
    return shutil.which("node")


def node_client_available() -> bool:
    if not node() or not SDK_JS.exists():
        return False
    return "Client" in SDK_JS.read_text(encoding="utf-8")


def broker_support():
    """The ``tests.support.broker`` module, or None when the broker is not there yet."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        from tests.support import broker  # type: ignore[import-not-found]
    except ImportError:
        return None
    if not hasattr(broker, "start_broker"):
        return None
    return broker


def secbus_cli() -> str | None:
    venv = ROOT / ".venv" / "bin" / "secbus"
    if venv.exists():
        return str(venv)
    return shutil.which("secbus")


PROBE_DIR = Path(__file__).resolve().parent / "plugins" / "secbus-bench-probe"


def ensure_probe_installed() -> None:
    """Install the ``bench-probe`` handler (a real entry point) into this environment once."""
    from importlib.metadata import entry_points

    if any(e.name == "bench-probe" for e in entry_points(group="secbus.handlers")):
        return
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
                    "-e", str(PROBE_DIR)], check=True, timeout=300)


_SCRATCH: list[Path] = []


def scratch(prefix: str) -> str:
    """A fresh temp dir (SDK spools and the like) removed when the run ends."""
    path = Path(tempfile.mkdtemp(prefix=f"secbus-bench-{prefix}-"))
    if not _SCRATCH:
        atexit.register(cleanup_scratch)
    _SCRATCH.append(path)
    return str(path)


def cleanup_scratch() -> None:
    while _SCRATCH:
        shutil.rmtree(_SCRATCH.pop(), ignore_errors=True)
