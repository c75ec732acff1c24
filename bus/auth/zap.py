"""The ZAP handler: admit only allow-listed CURVE keys, name them, count and log the rest.

ZeroMQ asks a ZAP handler (RFC 27, ``inproc://zeromq.zap.01`` in the socket's
context) about every CURVE handshake on a socket with ``curve_server = True``.
pyzmq's ``ThreadAuthenticator`` is that handler, running in a thread of its own;
this subclass only adds what secbus needs on top of it:

- the key check is a lookup in the :class:`~secbus.auth.allowlist.AllowList`
  (``configure_curve_callback``), not a directory of certificate files;
- the ZAP User-Id of an admitted key is its allow-list *name*, so ingest and the
  feed read the publisher straight from each message's ``User-Id`` property;
- a denied handshake is counted (``denied``, shown in ``/healthz``) and logged
  with the peer address and the (public, non-secret) key, because an unknown
  key knocking is exactly what an operator wants to see.  The peer learns
  nothing: ZeroMQ drops the connection and it never gets a reply.

The handler must run before the server sockets bind, in the same
``zmq.Context`` (ZAP is per context).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from .allowlist import AllowList

#: The ZAP domain set on the broker's server sockets; the handler answers this domain only.
ZAP_DOMAIN = "secbus"

log = logging.getLogger("secbus.auth")


class AllowListAuthenticator(ThreadAuthenticator):
    """``ThreadAuthenticator`` whose CURVE check is the allow-list (see the module docstring)."""

    # Counters are named _n_* because the base class uses _allowed and _denied for its IP lists.
    def __init__(self, context: zmq.Context, allow_list: AllowList, domain: str = ZAP_DOMAIN):
        # pyzmq's own log says "DENIED ... client_key=..." at debug level; ours is the one to read.
        super().__init__(context=context, log=logging.getLogger("secbus.auth.zap"))
        self.allow_list = allow_list
        self.domain = domain
        self._lock = threading.Lock()
        self._n_allowed = 0
        self._n_denied = 0
        self._last_denied: dict[str, Any] | None = None
        self._peer_address = ""

    def start(self) -> None:
        super().start()
        self.configure_curve_callback(self.domain, credentials_provider=self)

    # pyzmq calls this from the authenticator thread, once per CURVE handshake.
    def callback(self, domain: str, client_key_z85: bytes) -> bool:
        identity = self.allow_list.by_key(client_key_z85)
        key = client_key_z85.decode("ascii", "replace")
        with self._lock:
            if identity is None:
                self._n_denied += 1
                self._last_denied = {"address": self._peer_address, "public_key": key}
            else:
                self._n_allowed += 1
        if identity is None:
            log.warning("auth: denied CURVE handshake from %s: public key %s is not in the allow-list", self._peer_address or "?", key)
            return False
        log.info("auth: admitted %s (tenant %s) from %s", identity.name, identity.tenant, self._peer_address or "?")
        return True

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        # The address is frame 3 of a ZAP request; the credentials callback does not receive it.
        self._peer_address = msg[3].decode("utf-8", "replace") if len(msg) > 3 else ""
        try:
            await super().handle_zap_message(msg)
        except Exception:  # a dead ZAP thread would stall every handshake: deny this one, keep serving
            log.exception("auth: ZAP request failed; denying the handshake")
            with self._lock:
                self._n_denied += 1
            if len(msg) > 1:
                self._send_zap_reply(msg[1], b"500", b"Internal error")

    def curve_user_id(self, client_public_key: bytes) -> str:
        identity = self.allow_list.by_key(z85.encode(client_public_key))
        # Only called for admitted keys, which are always on the list.
        return identity.name if identity is not None else "anonymous"

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"allowed": self._n_allowed, "denied": self._n_denied, "last_denied": self._last_denied}
