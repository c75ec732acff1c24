"""A description of the machine and software stack a result came from.

Benchmark figures mean nothing without it: CPU model, cores, memory, load at
the start, and the versions of Python, Node, pyzmq, libzmq, msgpack, sqlite
and cryptography. Everything is read from /proc, the interpreters and the
libraries themselves; a missing item is reported as ``unknown``, never fatal.
"""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
import subprocess
from typing import Any


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_mib() -> int | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def _node_version() -> str:
    node = shutil.which("node")
    if not node:
        return "not installed"
    try:
        return subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _version(module: str, attr: str = "__version__") -> str:
    try:
        mod = __import__(module)
        value = getattr(mod, attr)
        return str(value() if callable(value) else value)
    except Exception:  # noqa: BLE001 - any import problem just means "unknown"
        return "unknown"


def describe() -> dict[str, Any]:
    """The machine description stored with every result."""
    import zmq

    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_mib": _mem_total_mib(),
        "load_average_at_start": [round(x, 2) for x in load] if load else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": _node_version(),
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "msgpack": ".".join(map(str, __import__("msgpack").version)),
        "sqlite": sqlite3.sqlite_version,
        "cryptography": _version("cryptography"),
    }
