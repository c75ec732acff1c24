"""The broker's security settings as one object: built from the config, applied to sockets.

The broker builds one :class:`Security` from its config at start and asks it:

- :meth:`Security.check_binds`: may these endpoints be bound (loopback rule)?
  Raises :class:`~secbus.auth.binding.InsecureBindError`; returns warnings to print.
- :meth:`Security.start`: start the ZAP handler in the broker's ``zmq.Context``
  (before any server socket binds).
- :meth:`Security.secure_server_socket`: make a socket a CURVE server in the
  ``secbus`` ZAP domain (before it binds; ``curve_server`` must precede ``bind``).
- :meth:`Security.identity_for`: who sent this request (ingest).
- :meth:`Security.feed_gate`: the tenant gate for the feed's XPUB socket.
- :meth:`Security.http_middlewares`: the bearer-token middleware, if a token is set.
- :meth:`Security.stats`: counts for ``/healthz`` (never a key or a token).

Config (all in the broker's TOML; ``docs/security.md`` shows them in use)::

    [auth]
    server_secret_key_file = ""   # the broker's NAME.key_secret; set => CURVE on ingest and feed
    allow_insecure = false        # without CURVE: allow binding non-loopback addresses anyway
    [[auth.clients]]              # the allow-list, see secbus.auth.allowlist
    [http]
    token = ""                    # set => Bearer token required on all paths but /healthz
    [ingest]
    rate_per_publisher = 0        # events/s per publisher; 0 = off
    rate_burst = 0                # bucket depth; 0 = max(rate, limits.max_batch_events)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import zmq

from secbus_sdk.wire import UNAUTHORIZED, WireError

from .allowlist import AllowList, Identity, parse_allow_list
from .binding import check_bind
from .feed import FeedGate
from .keys import load_secret_key_file
from .ratelimit import RateLimiter
from .zap import ZAP_DOMAIN, AllowListAuthenticator

log = logging.getLogger("secbus.auth")

#: The [auth] table's defaults (merged into secbus.config.DEFAULTS).
AUTH_DEFAULTS: dict[str, Any] = {"server_secret_key_file": "", "allow_insecure": False, "clients": []}


class SecurityError(ValueError):
    """Security settings that cannot be used; the message names the setting."""


class Security:
    """See the module docstring."""

    def __init__(
        self,
        server_keys: tuple[bytes, bytes] | None = None,
        allow_list: AllowList | None = None,
        allow_insecure: bool = False,
        http_token: str = "",
        rate: float = 0,
        burst: float | None = None,
    ):
        self.server_public, self.server_secret = server_keys or (None, None)
        self.allow_list = allow_list or AllowList()
        self.allow_insecure = allow_insecure
        self.http_token = http_token
        self.rate_limiter = RateLimiter(rate, burst)
        self.authenticator: AllowListAuthenticator | None = None
        self.gates: list[FeedGate] = []
        self.http_denied = 0
        self.unauthenticated = 0

    # ------------------------------------------------------------------ config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Security":
        """Build from the broker config; raise :class:`SecurityError` naming the bad setting."""
        auth = {**AUTH_DEFAULTS, **(config.get("auth") or {})}
        base_dir = Path(config["config_path"]).parent if config.get("config_path") else None
        server_keys = None
        key_file = auth["server_secret_key_file"]
        if key_file:
            path = Path(key_file).expanduser()
            if base_dir is not None and not path.is_absolute():
                path = base_dir / path
            try:
                server_keys = load_secret_key_file(path)
            except ValueError as exc:
                raise SecurityError(f"auth.server_secret_key_file: {exc}") from None
        try:
            allow_list = parse_allow_list(auth["clients"], base_dir)
        except ValueError as exc:
            raise SecurityError(str(exc)) from None
        if server_keys is None and len(allow_list):
            raise SecurityError(
                "auth.clients: an allow-list is configured but auth.server_secret_key_file is not, so nothing would check it; "
                "set the broker's key pair (secbus keys generate broker) or remove the list"
            )
        if server_keys is not None and not len(allow_list):
            log.warning("auth: CURVE is on but auth.clients is empty: every client will be refused")
        ingest = config.get("ingest") or {}
        limits = config.get("limits") or {}
        rate = ingest.get("rate_per_publisher", 0) or 0
        burst = ingest.get("rate_burst", 0) or max(rate, limits.get("max_batch_events", 1000))
        token = (config.get("http") or {}).get("token", "") or ""
        return cls(server_keys, allow_list, bool(auth["allow_insecure"]), token, rate, burst)

    @property
    def curve(self) -> bool:
        return self.server_secret is not None

    def check_binds(self, ingest: str, feed: str, http_address: str | None) -> list[str]:
        """Apply the loopback rule to every listener; return warnings to print at start."""
        how = "CURVE ([auth] server_secret_key_file)"
        lines = [
            check_bind("ingest", ingest, self.curve, self.allow_insecure, how),
            check_bind("feed", feed, self.curve, self.allow_insecure, how),
        ]
        if http_address:
            lines.append(check_bind("http", f"tcp://{http_address}", bool(self.http_token), self.allow_insecure, "a bearer token ([http] token)"))
        lines = [line for line in lines if line]
        if not self.curve:
            lines.insert(0, "security: no CURVE (grasslands): listening on loopback only; every publisher is 'anonymous' in tenant 'default' (docs/security.md)")
        else:
            lines.insert(0, f"security: CURVE on ingest and feed, {len(self.allow_list)} allow-listed client key(s); server public key {self.server_public.decode()}")
        return lines

    # ------------------------------------------------------------------ sockets

    def start(self, context: zmq.Context) -> None:
        """Start the ZAP handler in ``context``; a no-op without CURVE."""
        if self.curve and self.authenticator is None:
            self.authenticator = AllowListAuthenticator(context, self.allow_list)
            self.authenticator.start()

    def stop(self) -> None:
        if self.authenticator is not None:
            self.authenticator.stop()
            self.authenticator = None

    def secure_server_socket(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE server checked by ZAP; call before ``bind``. No-op without CURVE."""
        if not self.curve:
            return
        sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
        sock.curve_secretkey = self.server_secret
        sock.curve_publickey = self.server_public
        sock.curve_server = True  # must come before bind

    def feed_gate(self, xpub: zmq.Socket) -> FeedGate | None:
        """With CURVE: set XPUB_MANUAL on ``xpub`` (before bind) and return its gate."""
        if not self.curve:
            return None
        FeedGate.configure(xpub)
        gate = FeedGate(xpub, self.allow_list.by_name)
        self.gates.append(gate)
        return gate

    @property
    def feed_scoped(self) -> bool:
        """Feed topics carry a tenant namespace (``acme/event.authn.login``) when CURVE is on."""
        return self.curve

    # ------------------------------------------------------------------ requests

    def identity_for(self, frames: Sequence[zmq.Frame]) -> Identity | None:
        """The allow-list identity of the peer that sent ``frames``; None without CURVE.

        With CURVE a frame without a known ``User-Id`` cannot happen (ZAP admitted
        the connection); if it does, the request is refused with ``unauthorized``."""
        if not self.curve:
            return None
        try:
            user = frames[0].get("User-Id")
        except (zmq.ZMQError, AttributeError, KeyError):
            user = None
        identity = self.allow_list.by_name(user) if user else None
        if identity is None:
            self.unauthenticated += 1
            raise WireError(UNAUTHORIZED, f"ingest: connection has no allow-listed identity (User-Id {user!r})")
        return identity

    def rate_check(self, publisher: str, events: int) -> int:
        """0 when ``publisher`` may publish ``events`` now, else the retry delay in ms."""
        return self.rate_limiter.take(publisher, events)

    def http_middlewares(self) -> list:
        if not self.http_token:
            return []
        from .http import bearer_middleware

        return [bearer_middleware(self.http_token, self._count_http_denied)]

    def _count_http_denied(self) -> None:
        self.http_denied += 1

    # ------------------------------------------------------------------ health

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "curve": self.curve,
            "clients": len(self.allow_list),
            "http_token": bool(self.http_token),
            "http_denied": self.http_denied,
            "rate_per_publisher": self.rate_limiter.rate,
            "rate_limited": self.rate_limiter.refused,
            "unauthenticated_requests": self.unauthenticated,
        }
        if self.authenticator is not None:
            zap = self.authenticator.stats()
            out["handshakes_allowed"] = zap["allowed"]
            out["handshakes_denied"] = zap["denied"]
            out["last_denied"] = zap["last_denied"]
        if self.gates:
            out["feed_subscriptions"] = sum(g.applied for g in self.gates)
            out["feed_denied"] = sum(g.denied for g in self.gates)
        return out
