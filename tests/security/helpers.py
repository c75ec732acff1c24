"""Small helpers for the security tests: key pairs on disk."""

from __future__ import annotations

from pathlib import Path

from secbus.auth.keys import generate, load_secret_key_file

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
