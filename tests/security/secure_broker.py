"""A broker process with CURVE on, and raw protocol clients that hold a key pair.

``tests/support/broker.py`` pings through a plain (NULL) socket; a CURVE broker
answers only allow-listed keys.  So this module subclasses :class:`BrokerProcess`
to put the allow-list (``[[auth.clients]]``) in its config and to ping with a
key of that list, and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import zmq

from support.broker import BrokerProcess, RawClient, next_dir

from .helpers import KeyPair


class CurveClient(RawClient):
    """:class:`RawClient` whose DEALER is a CURVE client with ``pair`` (or a plain one with None)."""

    def __init__(self, endpoint: str, server_public: bytes, pair: KeyPair | None, timeout: float = 10.0):
        self.endpoint = endpoint
        self.timeout = timeout
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if pair is not None:
            self.sock.curve_serverkey = server_public
            self.sock.curve_publickey = pair.public
            self.sock.curve_secretkey = pair.secret
        self.sock.connect(endpoint)


def client_entry(pair: KeyPair, tenant: str, types=("*",), admin: bool = False) -> dict:
    return {"name": pair.name, "public_key": pair.public_text, "tenant": tenant, "types": list(types), "admin": admin}


class SecureBroker(BrokerProcess):
    """``secbus serve`` with ``[auth] server_secret_key_file`` and an allow-list."""

    def __init__(self, base_dir, server: KeyPair, clients: list[dict], probe: KeyPair, config: dict | None = None, **kw):
        config = dict(config or {})
        config["auth"] = {**config.get("auth", {}), "server_secret_key_file": str(server.secret_path), "clients": clients}
        super().__init__(base_dir, config=config, **kw)
        self.server = server
        self.clients = clients
        self.probe = probe  # an allow-listed pair used to PING until ready

    def client_for(self, pair: KeyPair | None, timeout: float = 10.0) -> CurveClient:
        return CurveClient(self.ingest, self.server.public, pair, timeout)

    def probe_client(self) -> CurveClient:
        return self.client_for(self.probe)


def start_secure_broker(tmp_path: Path, server: KeyPair, clients: list[dict], probe: KeyPair, config: dict | None = None, handlers=None) -> SecureBroker:
    broker = SecureBroker(next_dir(tmp_path, "secure"), server, clients, probe, config=config, handlers=[] if handlers is None else handlers)
    broker.start()
    try:
        broker.wait_ready()
    except BaseException:
        broker.kill()
        raise
    return broker
