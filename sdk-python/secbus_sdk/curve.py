"""CURVE options of ``Client``: the broker's public key and this client's key pair.

Each may be a 40-character Z85 value or a file written by ``secbus keys
generate`` (``NAME.key`` for a public key, ``NAME.key_secret`` for a pair;
pyzmq's ``zmq.auth.load_certificate`` reads them).  A secret-key file that group
or others can read is refused, as the broker refuses its own, and no error
message ever shows a secret.  Without a client pair an ephemeral one is made
(accepted only by a broker that does not check client keys; see docs/security.md).
"""

from __future__ import annotations

import os
from typing import Any

import zmq
import zmq.auth

from . import wire


def _is_key_file(value: Any) -> bool:
    """A path (not a 40-character Z85 value): ``os.PathLike``, or a str/bytes that is not a key."""
    if isinstance(value, os.PathLike):
        return True
    if isinstance(value, (str, bytes)):
        return len(value.strip()) != 40
    return False


def _read_key_file(name: str, path: Any, secret: bool) -> tuple[bytes, bytes | None]:
    """``(public, secret)`` from a ZeroMQ certificate file (``secbus keys generate`` writes them).

    A secret key file readable by group or others is refused, as the broker refuses its own."""
    path = os.fsdecode(os.fspath(path))
    if not os.path.isfile(path):  # never echo what may be a mistyped secret
        shown = "a value" if secret else repr(path)
        raise ValueError(f"{name}: expected a 40-character Z85 CURVE key or an existing key file, got {shown} of length {len(path)}")
    try:
        mode = os.stat(path).st_mode & 0o777
        public, secret_key = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{name}: expected a 40-character Z85 CURVE key or a key file, got {path!r} ({exc})") from None
    if secret:
        if not secret_key:
            raise ValueError(f"{name}: {path} holds no secret-key; give the NAME.key_secret file")
        if mode & 0o077:
            raise ValueError(f"{name}: {path}: mode {mode:04o} is too open; a secret key file must not be accessible by group or others (run: chmod 600 {path})")
    return public, secret_key


def curve_keys(server_key: Any, public_key: Any, secret_key: Any) -> tuple | None:
    """``(server_key, public_key, secret_key)`` as Z85 bytes from the Client options, or ``None``
    (CURVE off).  Raises ``ValueError`` naming the option; a secret is never echoed."""
    if server_key is None:
        if public_key is not None or secret_key is not None:
            raise ValueError("server_key: public_key/secret_key are given but server_key (the broker's public key) is not")
        return None
    # Files: server_key may be the broker's NAME.key; secret_key this client's NAME.key_secret
    # (its public key then comes from the same file unless public_key is given).
    if _is_key_file(server_key):
        server_key = _read_key_file("server_key", server_key, secret=False)[0]
    if public_key is not None and _is_key_file(public_key):
        public_key = _read_key_file("public_key", public_key, secret=False)[0]
    if secret_key is not None and _is_key_file(secret_key):
        file_public, secret_key = _read_key_file("secret_key", secret_key, secret=True)
        public_key = file_public if public_key is None else public_key
    keys = []
    for name, value in (("server_key", server_key), ("public_key", public_key), ("secret_key", secret_key)):
        if value is None:
            keys.append(None)
            continue
        if isinstance(value, str):
            value = value.strip().encode("ascii", "replace")
        if not isinstance(value, bytes) or len(value) != 40:
            shown = "a value" if name == "secret_key" else wire.show(value)  # never echo a secret
            raise ValueError(f"{name}: expected a 40-character Z85 CURVE key, got {shown} of length {len(value) if hasattr(value, '__len__') else '?'}")
        keys.append(value)
    if (keys[1] is None) != (keys[2] is None):
        raise ValueError("public_key: give both public_key and secret_key, or neither (an ephemeral pair is generated)")
    if keys[1] is None:
        keys[1], keys[2] = zmq.curve_keypair()
    return tuple(keys)
