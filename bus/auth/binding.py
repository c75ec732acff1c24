"""Where an unauthenticated broker may listen: loopback only, unless the operator opts out.

Without CURVE anyone who can reach the ingest port can publish forged events and
anyone who can reach the feed can read every tenant's events.  On loopback that
is the local host's users (the ZeroMQ "grasslands" model, fine for development);
on any other interface it is the network.  So the broker refuses to bind a
non-loopback address without CURVE unless ``[auth] allow_insecure = true``, and
says so loudly either way.  The HTTP endpoint has the same rule without a bearer
token (``[http] token``).

"Loopback" means: ``127.0.0.0/8``, ``::1``, ``localhost``, a host name that
resolves only to loopback addresses, and the local-only transports ``ipc://``
and ``inproc://``.  ``*``, ``0.0.0.0``, ``::`` and every other address are not.
"""

from __future__ import annotations

import ipaddress
import socket

LOCAL_TRANSPORTS = ("ipc://", "inproc://")


class InsecureBindError(ValueError):
    """An unauthenticated listener on a non-loopback address; the message says how to fix it."""


def host_of_endpoint(endpoint: str) -> str | None:
    """The host part of ``tcp://HOST:PORT`` (brackets removed), or None for ipc/inproc."""
    if endpoint.startswith(LOCAL_TRANSPORTS):
        return None
    rest = endpoint.split("://", 1)[1] if "://" in endpoint else endpoint
    # ZeroMQ allows tcp://IFACE;HOST:PORT (source address); the bind host is what matters.
    host, _, _port = rest.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def is_loopback_host(host: str | None) -> bool:
    """True for loopback addresses and names that resolve to loopback only (see module docstring)."""
    if host is None:
        return True
    if host in ("", "*"):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a.split("%", 1)[0]).is_loopback for a in addresses)


def check_bind(what: str, endpoint: str, secured: bool, allow_insecure: bool, how_to_secure: str) -> str | None:
    """Refuse or warn about an unsecured listener.

    Returns None when there is nothing to say, a warning line when an insecure
    non-loopback bind was explicitly allowed, and raises :class:`InsecureBindError`
    when it was not."""
    if secured:
        return None
    host = host_of_endpoint(endpoint)
    if is_loopback_host(host):
        return None
    if allow_insecure:
        return f"WARNING: {what} {endpoint} listens on a non-loopback address without {how_to_secure} (allow_insecure = true): anyone who can reach it is trusted"
    raise InsecureBindError(
        f"{what}: refusing to listen on {endpoint} without {how_to_secure}: it is not a loopback address. "
        f"Secure it (docs/security.md), bind 127.0.0.1, or set [auth] allow_insecure = true to accept the risk"
    )
