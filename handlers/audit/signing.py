"""Ed25519 signatures on checkpoints and on the head file.

A hash chain proves that records were not changed *relative to each other*;
someone able to rewrite the files could recompute every hash.  A signature by
a key the writer holds and the attacker does not turns a checkpoint into a
proof of everything before it.  Keys are PEM files as written by
``openssl genpkey -algorithm ed25519`` (private, PKCS#8) and
``openssl pkey -pubout`` (public, SubjectPublicKeyInfo); :func:`generate`
writes such a pair too.  The signature covers the ASCII bytes of the
record's ``hash``, which itself covers every other field, and is stored as
base64 in ``sig`` with the key's id (first 16 hex digits of the SHA-256 of
the raw public key) in ``key_id``.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class KeyFileError(ValueError):
    """A key file that cannot be used (named with the reason)."""


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class Signer:
    def __init__(self, private: Ed25519PrivateKey):
        self._private = private
        self.key_id = key_id(private.public_key())

    @classmethod
    def from_file(cls, path: Path) -> "Signer":
        try:
            key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise KeyFileError(f"signing_key {str(path)!r}: cannot load an unencrypted PEM private key ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"signing_key {str(path)!r}: expected an Ed25519 key, got {type(key).__name__}")
        return cls(key)

    def signature(self, record_hash: str) -> str:
        return base64.b64encode(self._private.sign(record_hash.encode("ascii"))).decode("ascii")


class Verifier:
    def __init__(self, public: Ed25519PublicKey):
        self._public = public
        self.key_id = key_id(public)

    @classmethod
    def from_file(cls, path: Path) -> "Verifier":
        try:
            key = serialization.load_pem_public_key(Path(path).read_bytes())
        except (OSError, ValueError, TypeError) as exc:
            raise KeyFileError(f"public key {str(path)!r}: cannot load a PEM public key ({exc})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFileError(f"public key {str(path)!r}: expected an Ed25519 key, got {type(key).__name__}")
        return cls(key)

    def check(self, record_hash: str, sig: object) -> bool:
        if not isinstance(sig, str):
            return False
        try:
            self._public.verify(base64.b64decode(sig, validate=True), record_hash.encode("ascii"))
            return True
        except (InvalidSignature, ValueError):
            return False


def generate(private_path: Path, public_path: Path) -> str:
    """Write a new Ed25519 key pair as PEM files (private one 0600); return its key id."""
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    Path(public_path).write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                                serialization.PublicFormat.SubjectPublicKeyInfo))
    return key_id(key.public_key())
