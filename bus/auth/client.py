"""CURVE options for the CLI's own clients (``secbus tail``, ``emit``, ``ping``).

``--server-key`` takes the broker's public key as a Z85 value or a ``NAME.key``
file; ``--key`` takes this client's ``NAME.key_secret`` file (its public key is
read from the same file).  ``SECBUS_SERVER_KEY`` and ``SECBUS_CLIENT_KEY`` are
the environment equivalents.  The secret file's permissions are checked exactly
as the broker checks its own (:func:`secbus.auth.keys.load_secret_key_file`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Mapping

import zmq

from .keys import KeyFileError, Z85_KEY_RE, check_z85_key, load_public_key_file, load_secret_key_file

#: (server public key, client public key, client secret key), Z85 bytes each.
CurveKeys = tuple[bytes, bytes, bytes]


def add_client_key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server-key", metavar="KEY|FILE", help="the broker's CURVE public key, Z85 or a NAME.key file (env SECBUS_SERVER_KEY); turns CURVE on")
    parser.add_argument("--key", metavar="FILE", help="this client's NAME.key_secret file (env SECBUS_CLIENT_KEY)")


def server_public_key(value: str) -> bytes:
    """A Z85 key value, or the public key of a ``.key``/``.key_secret`` file."""
    if Z85_KEY_RE.fullmatch(value.strip()) and not Path(value).exists():
        return check_z85_key(value.strip(), "--server-key")
    return load_public_key_file(Path(value).expanduser())


def client_curve(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> CurveKeys | None:
    """The CURVE keys the options ask for, or None for a plain (grasslands) connection.

    Raises :class:`KeyFileError` naming the option or file when they cannot be used."""
    environ = os.environ if environ is None else environ
    server = getattr(args, "server_key", None) or environ.get("SECBUS_SERVER_KEY")
    key_file = getattr(args, "key", None) or environ.get("SECBUS_CLIENT_KEY")
    if not server:
        if key_file:
            raise KeyFileError("--key: a client key needs --server-key (the broker's public key) too")
        return None
    if not key_file:
        raise KeyFileError("--server-key: give this client's key too (--key NAME.key_secret); the broker admits allow-listed keys only")
    server_key = server_public_key(server)
    public, secret = load_secret_key_file(Path(key_file).expanduser())
    return server_key, public, secret


def apply_client_curve(sock: zmq.Socket, curve: CurveKeys | None) -> None:
    """Set the CURVE client options on ``sock`` (before connect); no-op for None."""
    if curve is None:
        return
    sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = curve
