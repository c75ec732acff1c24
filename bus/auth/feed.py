"""Tenant isolation on the live feed: tenant-prefixed topics and an XPUB_MANUAL gate.

The problem.  An XPUB socket filters only by topic prefix, per subscriber, and a
SUB socket filters again locally by its own subscriptions.  So a broker cannot
quietly turn a subscriber's ``event.`` into "``event.`` of your tenant": either
the broker would send messages the SUB then drops, or send other tenants'
messages.  Filtering has to be in the topic itself.

The design.  With CURVE on, every feed topic is prefixed with its tenant and a
slash: ``acme/event.authn.login``, ``acme/trace``, ``acme/alert.high``.  The
feed socket runs with ``ZMQ_XPUB_MANUAL``: ZeroMQ hands each subscription
message to the broker instead of applying it, together with the subscriber's
authenticated ``User-Id`` (its allow-list name), and the broker applies only:

- a subscription under the subscriber's own namespace (``acme/event.authn.``) as is;
- a subscription that is a prefix of its namespace (``""``, ``"ac"``) narrowed to
  ``acme/`` (the SUB's local filter still passes everything under ``acme/``, so the
  subscriber sees exactly its tenant);
- anything else is dropped, counted (``feed_denied``) and logged: that subscriber
  receives nothing for it.

An admin key's subscriptions are applied as they are (``""`` is every tenant).
Messages that carry no tenant go under ``_/``, which no tenant name can be, so
only admins see them.  Without CURVE there are no tenants to keep apart and
topics carry no prefix (grasslands on loopback, see ``docs/security.md``).

Subscribers: use :func:`subscriptions_for` to turn the topic prefixes a user asks
for into what to subscribe, and :func:`split_topic` to strip the namespace off a
received topic (``secbus tail`` does both).
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Iterable

import zmq

from .allowlist import Identity

NAMESPACE_SEP = b"/"
#: Namespace of messages without a tenant; '_' cannot start a tenant name, so only admins match it.
NO_TENANT = "_"

log = logging.getLogger("secbus.auth.feed")


def namespace(tenant: str | None) -> bytes:
    return (tenant or NO_TENANT).encode("utf-8") + NAMESPACE_SEP


def feed_topic(topic: bytes, tenant: str | None, scoped: bool) -> bytes:
    """The topic to publish ``topic`` under: tenant-prefixed when the feed is scoped (CURVE on)."""
    return namespace(tenant) + topic if scoped else topic


def split_topic(topic: bytes) -> tuple[str | None, bytes]:
    """``b"acme/event.authn.login"`` -> ``("acme", b"event.authn.login")``; unscoped topics -> ``(None, topic)``."""
    head, sep, rest = topic.partition(NAMESPACE_SEP)
    if not sep:
        return None, topic
    return head.decode("utf-8", "replace"), rest


def subscriptions_for(topics: Iterable[str], tenant: str | None = None, scoped: bool = True) -> list[bytes]:
    """What a subscriber subscribes to for the topic prefixes it wants (an empty list: everything).

    - unscoped feed (no CURVE): the prefixes as given;
    - scoped, ``tenant`` known: each prefix under ``<tenant>/``, so the broker
      sends only what was asked for;
    - scoped, tenant unknown: ``""``, which the broker narrows to the key's own
      tenant (or, for an admin key, leaves as every tenant); filter the rest
      locally with :func:`wanted`."""
    topics = list(topics) or [""]
    if not scoped:
        return [t.encode("utf-8") for t in topics]
    if tenant is None:
        return [b""]
    return [namespace(tenant) + t.encode("utf-8") for t in topics]


def wanted(topic: bytes, prefixes: Iterable[str]) -> bool:
    """Client-side filter: does the (namespace-stripped) ``topic`` match one of ``prefixes``?"""
    prefixes = [p.encode("utf-8") for p in prefixes]
    return not prefixes or any(topic.startswith(p) for p in prefixes)


def tenant_of_alert(alert: dict, read_event: Callable[[int], dict | None]) -> str | None:
    """The tenant an alert belongs to, for the feed namespace.

    An alert names the events it is about (``seqs``); when they all belong to
    one tenant, so does the alert.  When they span tenants (a rule grouped
    across them) or none can be read, the alert has no single tenant and goes
    to the admin-only ``_/`` namespace: a tenant never sees an alert built
    from another tenant's events."""
    if isinstance(alert.get("tenant"), str):
        return alert["tenant"]
    tenants = set()
    for seq in alert.get("seqs") or []:
        if not isinstance(seq, int):
            return None
        event = read_event(seq)
        if event is None:
            return None
        tenants.add(event.get("tenant"))
        if len(tenants) > 1:
            return None
    return tenants.pop() if len(tenants) == 1 else None


def scope_subscription(topic: bytes, identity: Identity) -> bytes | None:
    """The subscription to apply for ``identity`` asking for ``topic``, or None to refuse it."""
    if identity.admin:
        return topic
    own = namespace(identity.tenant)
    if topic.startswith(own):
        return topic
    if own.startswith(topic):
        return own
    return None


class FeedGate:
    """Reads subscription messages off an ``XPUB_MANUAL`` socket and applies the allowed ones.

    Call :meth:`handle` from the thread that owns the XPUB socket whenever it is
    readable (ZeroMQ sockets are not thread-safe); it never raises for bad input.
    ``lookup`` maps a ZAP User-Id (allow-list name) to its :class:`Identity`."""

    def __init__(self, xpub: zmq.Socket, lookup: Callable[[str], Identity | None]):
        self.xpub = xpub
        self.lookup = lookup
        self._lock = threading.Lock()
        self.applied = 0
        self.denied = 0
        self.ignored = 0

    @staticmethod
    def configure(xpub: zmq.Socket) -> None:
        """Set XPUB_MANUAL; call before bind."""
        xpub.setsockopt(zmq.XPUB_MANUAL, 1)

    def handle(self) -> None:
        """Process every subscription message waiting on the socket."""
        while True:
            try:
                frame = self.xpub.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._handle_frame(frame)

    def _user_id(self, frame: zmq.Frame) -> str | None:
        try:
            return frame.get("User-Id")
        except (zmq.ZMQError, KeyError, TypeError):
            return None

    def _handle_frame(self, frame: zmq.Frame) -> None:
        data = frame.bytes
        if not data or data[0] not in (0, 1):
            self._count("ignored")  # an XSUB may send ordinary messages upstream; the feed takes none
            return
        subscribe, topic = data[0] == 1, data[1:]
        user = self._user_id(frame)
        identity = self.lookup(user) if user else None
        if identity is None:
            # An unsubscription from a closed pipe carries no User-Id; ZeroMQ already dropped its subscriptions.
            if subscribe:
                self._count("denied")
                log.warning("feed: refused subscription %r from an unauthenticated peer", topic)
            return
        scoped = scope_subscription(topic, identity)
        if scoped is None:
            if subscribe:
                self._count("denied")
                log.warning("feed: refused %s (tenant %s) a subscription to %r outside its tenant", identity.name, identity.tenant, topic)
            return
        self.xpub.setsockopt(zmq.SUBSCRIBE if subscribe else zmq.UNSUBSCRIBE, scoped)
        if subscribe:
            self._count("applied")

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"subscriptions": self.applied, "denied": self.denied, "ignored": self.ignored}
