"""CURVE key files: writing them (``secbus keys generate``) and reading them safely.

The files use ZeroMQ's certificate format, the one ``zmq.auth.create_certificates``
writes and ``zmq.auth.load_certificate`` reads (so keys made by pyzmq, czmq's
``zcert`` or secbus are interchangeable)::

    NAME.key          public key, mode 0644: hand it to the other side
    NAME.key_secret   public + secret key, mode 0600: never leaves this host

Why the writer is ours and not ``create_certificates``: pyzmq opens the secret
file with the process umask, so with the usual 022 it exists world-readable for
a moment, and a later ``chmod`` is a race.  Here the secret file is created with
``O_CREAT | O_EXCL`` and mode 0600 from its first byte, and an existing file is
never overwritten (a lost key pair is an outage; an overwritten one is worse).

Reading a secret key refuses a file whose mode grants anything to group or
others, with a message naming the file, its mode and the fix, as OpenSSH does
for ``~/.ssh/id_*``: a secret anyone on the host can read is not a secret.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import stat
import sys
from pathlib import Path

import zmq
import zmq.auth
from zmq.utils import z85

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
PUBLIC_MODE = 0o644
SECRET_MODE = 0o600
#: A key pair's name is also its file name and, by default, the publisher's name.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
#: A z85-encoded CURVE key: 32 bytes in 40 characters.
Z85_KEY_RE = re.compile(r"[0-9A-Za-z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}")

_BANNER = """#   ****  Generated on {now} by secbus  ****
#   ZeroMQ CURVE {what} Certificate
#   {advice}

"""


class KeyFileError(ValueError):
    """A key file or key value that cannot be used; the message names it and says why."""


def check_z85_key(value: str | bytes, what: str, secret: bool = False) -> bytes:
    """Return a z85 CURVE key as bytes, or raise :class:`KeyFileError` naming ``what``.

    With ``secret`` the message gives only the length, never the value."""
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    if not isinstance(text, str) or not Z85_KEY_RE.fullmatch(text):
        if secret:
            length = len(text) if isinstance(text, str) else "?"
            raise KeyFileError(f"{what}: expected a 40-character z85 CURVE key, got a value of length {length}")
        shown = text if isinstance(text, str) and len(text) <= 48 else f"{str(text)[:45]}..."
        raise KeyFileError(f"{what}: expected a 40-character z85 CURVE key, got {shown!r}")
    try:
        z85.decode(text.encode("ascii"))
    except Exception:  # pragma: no cover - the regex admits only the z85 alphabet
        raise KeyFileError(f"{what}: not a valid z85 key") from None
    return text.encode("ascii")


def _write_cert(path: Path, mode: int, what: str, advice: str, public: bytes, secret: bytes | None) -> None:
    body = _BANNER.format(now=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), what=what, advice=advice)
    body += "metadata\ncurve\n"
    body += f'    public-key = "{public.decode("ascii")}"\n'
    if secret is not None:
        body += f'    secret-key = "{secret.decode("ascii")}"\n'
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed the public file's mode
        os.write(fd, body.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


def generate(name: str, directory: str | os.PathLike = ".") -> tuple[Path, Path, bytes]:
    """Write a new CURVE key pair ``NAME.key`` (0644) and ``NAME.key_secret`` (0600).

    Returns ``(public_path, secret_path, public_key_z85)``.  Raises
    :class:`KeyFileError` for a bad name or when either file already exists."""
    if not NAME_RE.fullmatch(name or ""):
        raise KeyFileError(f"name: expected letters, digits, '_', '.' or '-' (1-128, not starting with a symbol), got {name!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    public_path = directory / f"{name}{PUBLIC_SUFFIX}"
    secret_path = directory / f"{name}{SECRET_SUFFIX}"
    for path in (public_path, secret_path):
        if path.exists():
            raise KeyFileError(f"{path}: already exists; refusing to overwrite a key (remove it first if you mean to replace it)")
    public, secret = zmq.curve_keypair()
    _write_cert(secret_path, SECRET_MODE, "**Secret**", "DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.", public, secret)
    try:
        _write_cert(public_path, PUBLIC_MODE, "Public", "Give this file to the peers that must trust this key.", public, None)
    except OSError:
        secret_path.unlink(missing_ok=True)
        raise
    return public_path, secret_path, public


def check_secret_permissions(path: str | os.PathLike) -> None:
    """Raise :class:`KeyFileError` when group or others have any access to ``path``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise KeyFileError(f"{path}: secret key file not found") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the secret key file ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"{path}: a secret key file must be a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"{path}: mode {mode:04o} is too open; a secret key file must not be accessible by group or others "
            f"(run: chmod 600 {path})"
        )


def load_secret_key_file(path: str | os.PathLike) -> tuple[bytes, bytes]:
    """Read ``(public_key, secret_key)`` (z85 bytes) from a secret certificate file.

    Refuses group/other-accessible files (see the module docstring) and files
    without a secret key, naming the file."""
    check_secret_permissions(path)
    try:
        public, secret = zmq.auth.load_certificate(os.fspath(path))
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path}: not a readable CURVE certificate ({exc})") from None
    if not public or not secret:
        raise KeyFileError(f"{path}: holds no secret-key; give the NAME{SECRET_SUFFIX} file, not NAME{PUBLIC_SUFFIX}")
    return check_z85_key(public, f"{path}: public-key"), check_z85_key(secret, f"{path}: secret-key", secret=True)


def load_public_key_file(path: str | os.PathLike) -> bytes:
    """Read the public key (z85 bytes) from a public or secret certificate file."""
    try:
        public, _secret = zmq.auth.load_certificate(os.fspath(path))
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path}: not a readable CURVE certificate ({exc})") from None
    if not public:
        raise KeyFileError(f"{path}: holds no public-key")
    return check_z85_key(public, f"{path}: public-key")


def generate_command(args: argparse.Namespace) -> int:
    """``secbus keys generate NAME [--dir DIR]``: write a key pair, print how to use it."""
    directory = getattr(args, "dir", None) or "."
    try:
        public_path, secret_path, public = generate(args.name, directory)
    except (KeyFileError, OSError) as exc:
        print(f"secbus keys generate: {exc}", file=sys.stderr)
        return 1
    print(f"public key  {public.decode('ascii')}")
    print(f"wrote       {public_path} (mode 0644, share it)")
    print(f"wrote       {secret_path} (mode 0600, keep it on this host)")
    print()
    print("To let this key publish, add to the broker's config (edit tenant and types):")
    print()
    print("[[auth.clients]]")
    print(f'name = "{args.name}"')
    print(f'public_key = "{public.decode("ascii")}"')
    print('tenant = "default"')
    print('types = ["*"]')
    print("admin = false")
    print()
    print("If this is the broker's own key pair, set instead:")
    print()
    print("[auth]")
    print(f'server_secret_key_file = "{secret_path}"')
    return 0


def add_parser(subparsers) -> None:
    """Register ``keys generate`` on the CLI's subparsers (``secbus.cli.COMMANDS`` convention: ``run``)."""
    keys = subparsers.add_parser("keys", help="manage CURVE key pairs (docs/security.md)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    gen = keys_sub.add_parser("generate", help="write a CURVE key pair NAME.key (0644) and NAME.key_secret (0600)")
    gen.add_argument("name", help="the key pair's name (file name, and the publisher's name in the allow-list)")
    gen.add_argument("--dir", default=".", help="directory to write into (default: the current directory)")
    gen.set_defaults(run=generate_command)
