"""One request in, one reply (or a batch of events to commit) out.

:func:`handle` is pure apart from the counters: it decodes the frames with the
shared codec (``secbus_sdk.wire``), validates every event with the single
definition of a valid event (``secbus_sdk.event.validate_event``), stamps the
broker's fields and returns either a finished reply (PONG, ERR) or a
:class:`PendingPub` whose ACK is sent by the router after the group commit.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Sequence

import msgpack
import zmq

from secbus_sdk import wire
from secbus_sdk.event import BROKER_FIELDS, check_event_size, validate_event
from secbus_sdk.wire import MALFORMED, OVERLOADED, UNAUTHORIZED, Limits, WireError

from ..log.base import StampedEvent
from . import fastcheck
from .identity import ANONYMOUS, identity_for
from .redact import SecretKeys


@dataclass(slots=True)
class PendingPub:
    """A PUB whose valid events wait for the group commit."""

    routing_id: bytes
    seq: int
    total: int
    rejected: list = field(default_factory=list)
    #: indexes into the group's list of StampedEvent for this request's valid events
    records: list = field(default_factory=list)

    def ack(self, seqs: Sequence[int | None]) -> list[bytes]:
        accepted = sum(1 for i in self.records if seqs[i] is not None)
        duplicate = len(self.records) - accepted
        body = {"accepted": accepted, "duplicate": duplicate, "rejected": self.rejected, "seq": self.seq}
        return [self.routing_id, wire.MAGIC, wire.ACK, wire.pack_ordered(body)]


def err(routing_id: bytes, code: str, message: str, seq: int | None = None, retry_after_ms: int | None = None) -> list[bytes]:
    body: dict = {"code": code, "message": message}
    if retry_after_ms is not None:
        body["retry_after_ms"] = retry_after_ms
    body["seq"] = seq
    return [routing_id, wire.MAGIC, wire.ERR, wire.pack_ordered(body)]


def pong(routing_id: bytes) -> list[bytes]:
    return [routing_id, wire.MAGIC, wire.PONG, wire.pack_ordered({"time_ns": time.time_ns(), "version": wire.PROTOCOL_VERSION})]


def _no_ext(code: int, data: bytes):
    raise ValueError("ext type")


def split_pub(frames: list[bytes], limits: Limits) -> tuple[dict, list[bytes]] | None:
    """Fast path for a well-formed PUB: its body and each event's bytes as received.

    ``msgpack.Unpacker.tell()`` gives each event's byte range inside the body,
    so valid events are stored without being encoded again.  Anything unusual
    (another command, a bad envelope, trailing bytes...) returns None and the
    caller decodes with ``wire.decode_frames``, which produces the precise
    error; so this function never decides what is an error."""
    if len(frames) != 3 or frames[0] != wire.MAGIC or frames[1] != wire.PUB:
        return None
    data = frames[2]
    if len(data) > limits.max_frame_bytes:
        return None
    try:
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=True, ext_hook=_no_ext, max_ext_len=0, max_buffer_size=max(len(data), 1))
        unpacker.feed(data)
        body: dict = {}
        spans: list[bytes] | None = None
        for _ in range(unpacker.read_map_header()):
            key = unpacker.unpack()
            if key == "events" and spans is None:
                count = unpacker.read_array_header()
                if count > limits.max_batch_events:
                    return None
                events, spans = [], []
                for _ in range(count):
                    start = unpacker.tell()
                    events.append(unpacker.unpack())
                    spans.append(data[start : unpacker.tell()])
                body["events"] = events
            elif type(key) is str and key not in body:
                body[key] = unpacker.unpack()
            else:
                return None
        if unpacker.tell() != len(data) or spans is None:
            return None
        return body, spans
    except Exception:
        return None


def _seq_of(body: dict) -> int | None:
    seq = body.get("seq")
    return seq if type(seq) is int and 0 <= seq < 2**64 else None


class RequestHandler:
    """Turns requests into replies or pending PUBs; counts every reject by code."""

    def __init__(self, limits: Limits, rejects: Counter, overloaded: Callable[[], int | None], security=None,
                 secrets: SecretKeys | None = None, counts: Counter | None = None):
        self.limits = limits
        self.secrets = secrets if secrets is not None else SecretKeys()
        #: events_redacted and other non-reject counts, shared with the router's /healthz figures
        self.counts = counts if counts is not None else Counter()
        #: secbus.auth.security.Security: identity (CURVE) and the per-publisher rate; None = neither
        self.security = security
        self.rejects = rejects
        #: returns retry_after_ms when the backlog is over its bound, else None
        self.overloaded = overloaded

    def handle(self, frames: list[zmq.Frame], received_ns: int, out: list[StampedEvent]) -> list[bytes] | PendingPub:
        routing_id = frames[0].bytes
        rest = [f.bytes for f in frames[1:]]
        spans = sure = None
        # fastcheck: msgspec marks the events that are certainly valid; the rest go to validate_event
        decoded = fastcheck.split_pub(rest, self.limits) or split_pub(rest, self.limits)
        if decoded is not None:
            command, body, spans = wire.PUB, decoded[0], decoded[1]
            sure = decoded[2] if len(decoded) == 3 else None
        else:
            try:
                command, body = wire.decode_frames(rest, self.limits)
            except WireError as exc:
                self.rejects[exc.code] += 1
                return err(routing_id, exc.code, exc.message)
        if command == wire.PING:
            return pong(routing_id)
        if command != wire.PUB:
            self.rejects[MALFORMED] += 1
            return err(routing_id, MALFORMED, f"frame 1: {command.decode()} is a reply; a publisher sends PUB or PING", _seq_of(body))
        try:
            seq, events = wire.check_pub(body, len(rest[2]), self.limits)
            identity = identity_for(frames, self.security)
        except WireError as exc:
            self.rejects[exc.code] += 1
            return err(routing_id, exc.code, exc.message, _seq_of(body))
        retry = self.overloaded()
        if retry is not None:
            self.rejects[OVERLOADED] += 1
            return err(routing_id, OVERLOADED, "ingest: the unconsumed backlog is over its bound; retry later", seq, retry)
        if self.security is not None and self.security.rate_limiter.enabled:
            retry = self.security.rate_check(identity.publisher, len(events))
            if retry:
                self.rejects[OVERLOADED] += 1
                return err(routing_id, OVERLOADED, f"ingest: publisher {identity.publisher!r} is over its rate of {self.security.rate_limiter.rate:g} events/s; retry later", seq, retry)
        pending = PendingPub(routing_id, seq, len(events))
        limits = self.limits
        max_event_bytes = limits.max_event_bytes
        publisher, tenant = identity.publisher, identity.tenant
        may_publish = None if identity is ANONYMOUS else identity.may_publish
        redact, any_secret = self.secrets.redact, self.secrets.any_secret
        records, rejected, rejects = pending.records, pending.rejected, self.rejects
        # the per-event loop is the hot path: checks are inlined (about 1 us/event saved)
        for index, raw in enumerate(events):
            try:
                if sure is not None and sure[index]:
                    # certainly valid (bus/ingest/fastcheck.py), without the broker's fields: stored as received
                    if may_publish is not None and not may_publish(raw.type):
                        raise WireError(UNAUTHORIZED, f"type: publisher {publisher!r} may not publish {raw.type!r}", "type")
                    if not raw.attrs or not any_secret(raw.attrs):
                        if len(spans[index]) > max_event_bytes:
                            check_event_size(spans[index], limits)  # raises with the precise message
                        records.append(len(out))
                        out.append(StampedEvent(raw.id, raw.ts, raw.type, raw.trace_id, received_ns, publisher, tenant, spans[index], None))
                        continue
                    event = raw = fastcheck.as_event(raw)  # a secret attr to redact: the general path below
                else:
                    event = validate_event(raw, limits)
                if may_publish is not None and not may_publish(event["type"]):
                    raise WireError(UNAUTHORIZED, f"type: publisher {publisher!r} may not publish {event['type']!r}", "type")
                redacted = redact(event) if "attrs" in event else None
                if redacted is not None:
                    event = redacted
                    self.counts["events_redacted"] += 1
                if redacted is None and spans is not None and "tenant" not in raw and "publisher" not in raw and "seq" not in raw and "received_ns" not in raw:
                    packed = spans[index]  # the bytes as received: no re-encoding
                else:
                    for name in BROKER_FIELDS:  # stamped by the broker, never taken from the payload
                        event.pop(name, None)
                    packed = wire.pack_ordered(event)
                if len(packed) > max_event_bytes:
                    check_event_size(packed, limits)  # raises with the precise message
            except WireError as exc:
                rejects[exc.code] += 1
                rejected.append([index, exc.code, exc.message])
                continue
            records.append(len(out))
            out.append(StampedEvent(event["id"], event["ts"], event["type"], event["trace_id"], received_ns, publisher, tenant, packed, event))
        return pending
