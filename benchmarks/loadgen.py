"""Load generators and receivers that run in their own processes.

A broker runs in its own process, so its baseline must too: the raw ZeroMQ
receiver and every publisher here are started with ``multiprocessing``
(spawn), build their payloads *before* the start signal, and report back
through a queue. Wall-clock times are ``time.time()`` so the orchestrator
and the workers share a clock.

Every loop is bounded twice: by an event count and by a time limit.

Workers share the 2 cores with the broker they measure, so they stay cheap:
the payloads they build up front are frozen out of the garbage collector
(``_settle``: otherwise each full collection walks every prebuilt event,
about half of a paced publisher's CPU at 35k events/s), and waits are
rounded *up* to whole milliseconds (pyzmq truncates, and a 0 ms poll in the
last millisecond before each send was a busy loop).
"""

from __future__ import annotations

import gc
import math
import multiprocessing as mp
import time
from dataclasses import dataclass
from typing import Any

import msgpack
import zmq

from secbus_sdk import wire

from .payloads import make_batches, make_event, pub_body

CTX = mp.get_context("spawn")


def _settle() -> None:
    """After the payloads are built: nothing built so far is garbage (see the module docstring)."""
    gc.collect()
    gc.freeze()


# --------------------------------------------------------------------------
# raw baseline: PUSH/PULL + msgpack decoding


def raw_receiver(endpoint_q, expected_events: int, time_limit: float, result_q) -> None:
    """PULL on a free loopback port; decode every body like the broker must."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.RCVHWM, 10000)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    endpoint_q.put(f"tcp://127.0.0.1:{port}")
    received = 0
    first = last = None
    deadline = time.monotonic() + time_limit
    unpackb = msgpack.unpackb
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    while received < expected_events and time.monotonic() < deadline:
        if not poller.poll(100):
            continue
        while True:
            try:
                body = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            value = unpackb(body, raw=False)
            received += len(value["events"])
            last = time.time()
            if first is None:
                first = last
    result_q.put({"received": received, "first": first, "last": last})
    sock.close(linger=0)
    ctx.term()


def raw_pusher(endpoint: str, total_events: int, batch: int, ready, go, result_q, time_limit: float) -> None:
    batches = make_batches(total_events, batch)
    _settle()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, 1000)
    sock.connect(endpoint)
    ready.release()
    go.wait(60)
    sent = 0
    deadline = time.monotonic() + time_limit
    for _seq, count, body in batches:
        sock.send(body, copy=False)
        sent += count
        if (sent & 0x3FF) == 0 and time.monotonic() > deadline:
            break
    result_q.put({"sent": sent, "end": time.time()})
    sock.close(linger=5000)
    ctx.term()


# --------------------------------------------------------------------------
# the broker: DEALER publishers speaking protocol v1


@dataclass
class PubResult:
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    overloaded: int = 0
    errors: int = 0
    end: float = 0.0
    ack_latencies_ms: list | None = None


def _recv_reply(sock) -> tuple[bytes, dict]:
    return wire.decode_frames(sock.recv_multipart())


def dealer_publisher(endpoint: str, total_events: int, batch: int, window: int, ready, go, result_q,
                     time_limit: float) -> None:
    """Send ``total_events`` in PUB batches, ``window`` batches in flight, as fast as ACKs allow."""
    batches = make_batches(total_events, batch)
    _settle()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    ready.release()
    go.wait(60)
    res = PubResult()
    pending = list(reversed(batches))  # pop() from the end = in order
    in_flight: dict[int, tuple[int, int, bytes]] = {}
    deadline = time.monotonic() + time_limit
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    while (pending or in_flight) and time.monotonic() < deadline:
        while pending and len(in_flight) < window:
            item = pending.pop()
            in_flight[item[0]] = item
            sock.send_multipart([wire.MAGIC, wire.PUB, item[2]], copy=False)
        if not poller.poll(1000):
            continue
        command, reply = _recv_reply(sock)
        seq = reply.get("seq")
        item = in_flight.pop(seq, None)
        if command == wire.ACK:
            res.accepted += reply["accepted"]
            res.duplicate += reply["duplicate"]
            res.rejected += len(reply["rejected"])
        elif command == wire.ERR and reply.get("code") == wire.OVERLOADED and item is not None:
            res.overloaded += 1
            time.sleep(min(reply.get("retry_after_ms", 10), 1000) / 1000.0)
            pending.append(item)
        else:
            res.errors += 1
    res.end = time.time()
    result_q.put(res.__dict__)
    sock.close()
    ctx.term()


def paced_publisher(endpoint: str, rate: float, duration: float, batch: int, ready, go, result_q) -> None:
    """Publish ``rate`` events/s for ``duration`` s in batches of ``batch``.

    Events are built before the start signal; each batch gets ``ts`` = the
    moment it is sent, so handler-side ``now - ts`` is the publish-to-handler
    latency. The time from send to ACK is recorded per batch
    (publish-to-ACK). Sending is paced on a schedule, not on ACKs, so a slow
    broker shows up as latency rather than as a lower offered rate."""
    total_batches = max(1, int(duration * rate / batch))
    events = [make_event() for _ in range(total_batches * batch)]
    _settle()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    ready.release()
    go.wait(60)
    interval = batch / rate
    start = time.monotonic()
    sent_at: dict[int, int] = {}
    acks: list[float] = []
    res = PubResult()
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    seq = 0
    late_ms_max = 0.0
    give_up = start + duration + 15
    while (seq < total_batches or sent_at) and time.monotonic() < give_up:
        now = time.monotonic()
        due = start + seq * interval
        if seq < total_batches and now >= due:
            late_ms_max = max(late_ms_max, (now - due) * 1000)
            chunk = events[seq * batch:(seq + 1) * batch]
            seq += 1
            ts = time.time_ns()
            for e in chunk:
                e["ts"] = ts
            body = pub_body(chunk, seq)
            sent_at[seq] = time.perf_counter_ns()
            sock.send_multipart([wire.MAGIC, wire.PUB, body], copy=False)
            continue
        timeout_ms = max(0, math.ceil((due - now) * 1000)) if seq < total_batches else 100
        if poller.poll(timeout_ms):
            while True:
                try:
                    command, reply = wire.decode_frames(sock.recv_multipart(zmq.NOBLOCK))
                except zmq.Again:
                    break
                t = sent_at.pop(reply.get("seq"), None)
                if t is not None:
                    acks.append((time.perf_counter_ns() - t) / 1e6)
                if command == wire.ACK:
                    res.accepted += reply["accepted"]
                    res.rejected += len(reply["rejected"])
                else:
                    res.errors += 1
    res.end = time.time()
    out = dict(res.__dict__)
    out.update(ack_latencies_ms=acks, sent_events=seq * batch, unacked_batches=len(sent_at),
               max_send_lateness_ms=late_ms_max, offered_duration_s=(seq * interval))
    result_q.put(out)
    sock.close()
    ctx.term()


def paced_load(endpoint: str, rate: float, duration: float, batch: int, publishers: int = 1) -> tuple[float, Any, list]:
    """Start ``publishers`` paced publishers sharing ``rate``; returns (go time, queue, procs)."""
    share = rate / publishers
    return run_workers(paced_publisher, [lambda r, g, q: (endpoint, share, duration, batch, r, g, q)] * publishers)


# --------------------------------------------------------------------------
# orchestration


def run_workers(target, args_list: list[tuple], start_timeout: float = 60.0) -> tuple[float, list[dict], list[Any]]:
    """Start one process per args tuple, wait until all are ready, release them.

    Each target gets ``(*args, ready, go, result_q)`` inserted where its
    signature expects them (see the callers). Returns (go time, results, procs).
    """
    ready = CTX.Semaphore(0)
    go = CTX.Event()
    result_q = CTX.Queue()
    procs = []
    for args in args_list:
        p = CTX.Process(target=target, args=args(ready, go, result_q), daemon=True)
        p.start()
        procs.append(p)
    deadline = time.monotonic() + start_timeout
    waiting = len(procs)
    while waiting:
        if ready.acquire(timeout=0.25):
            waiting -= 1
            continue
        dead = [p for p in procs if p.exitcode not in (None, 0)]
        if dead or time.monotonic() > deadline:
            for p in procs:
                p.kill()
            why = f"exited with {dead[0].exitcode}" if dead else f"was not ready within {start_timeout}s"
            raise RuntimeError(f"a load generator {why}")
    t_go = time.time()
    go.set()
    return t_go, result_q, procs


def collect(result_q, procs, timeout: float) -> list[dict]:
    results = []
    deadline = time.monotonic() + timeout
    for _ in procs:
        remaining = max(0.1, deadline - time.monotonic())
        results.append(result_q.get(timeout=remaining))
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
    return results


def raw_pushpull_rate(publishers: int, batch: int, events_per_publisher: int, time_limit: float) -> dict:
    """Events/s through raw PUSH/PULL with msgpack decoding, same payloads."""
    endpoint_q = CTX.Queue()
    result_q = CTX.Queue()
    total = publishers * events_per_publisher
    receiver = CTX.Process(target=raw_receiver, args=(endpoint_q, total, time_limit + 5, result_q), daemon=True)
    receiver.start()
    endpoint = endpoint_q.get(timeout=30)
    t_go, pub_q, procs = run_workers(
        raw_pusher,
        [lambda r, g, q: (endpoint, events_per_publisher, batch, r, g, q, time_limit)] * publishers,
    )
    collect(pub_q, procs, time_limit + 30)
    got = result_q.get(timeout=time_limit + 30)
    receiver.join(timeout=10)
    elapsed = (got["last"] or t_go) - t_go
    return {"events": got["received"], "elapsed_s": elapsed,
            "events_per_s": got["received"] / elapsed if elapsed > 0 else 0.0}


def broker_ingest_rate(endpoint: str, publishers: int, batch: int, events_per_publisher: int,
                       time_limit: float, window: int = 8) -> dict:
    """Durable events/s into a broker: every event ACKed after commit."""
    t_go, pub_q, procs = run_workers(
        dealer_publisher,
        [lambda r, g, q: (endpoint, events_per_publisher, batch, window, r, g, q, time_limit)] * publishers,
    )
    results = collect(pub_q, procs, time_limit + 60)
    accepted = sum(r["accepted"] for r in results)
    elapsed = max(r["end"] for r in results) - t_go
    return {
        "events": accepted,
        "duplicate": sum(r["duplicate"] for r in results),
        "rejected": sum(r["rejected"] for r in results),
        "overloaded": sum(r["overloaded"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "elapsed_s": elapsed,
        "events_per_s": accepted / elapsed if elapsed > 0 else 0.0,
    }
