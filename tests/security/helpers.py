"""Small helpers for the security tests: polling with a deadline, key pairs on disk."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, TypeVar

from secbus.auth.keys import generate, load_secret_key_file

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy or ``timeout`` passes (then fail)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class KeyPair:
    """A key pair generated with ``secbus.auth.keys.generate`` into ``directory``."""

    def __init__(self, directory: Path, name: str):
        self.name = name
        self.public_path, self.secret_path, self.public = generate(name, directory)
        _, self.secret = load_secret_key_file(self.secret_path)

    @property
    def public_text(self) -> str:
        return self.public.decode("ascii")

    @property
    def secret_text(self) -> str:
        return self.secret.decode("ascii")
