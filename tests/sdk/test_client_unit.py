"""Client promises that hold without a broker: bad input raises ValueError naming the field,
bus trouble never raises, the full-queue policies, close() spooling what is left."""

from __future__ import annotations

import json
import logging
import os
import re
import resource
import threading
import time

import pytest

from secbus_sdk import Client
from secbus_sdk.event import ID_RE
from secbus_sdk.fallback import FallbackSink
from secbus_sdk.spool import Spool

from .helpers import accounted, dead_endpoint, fill_until_full, wait_until


@pytest.fixture
def down_client(tmp_path):
    clients = []

    def make(**options) -> Client:
        options.setdefault("service", "unit")
        options.setdefault("spool_dir", str(tmp_path / "spool"))
        options.setdefault("ack_timeout", 0.2)
        options.setdefault("stats_interval", 0)  # exact event counts; reports: test_sdk_stats_events.py
        c = Client(dead_endpoint(), **options)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close(0)


BAD_INPUT = [
    ({"type": "Authn.Login"}, "type", "Authn.Login"),
    ({"type": "login"}, "type", "login"),
    ({"type": 42}, "type", "42"),
    ({"type": ["authn", "login"]}, "type", "['authn', 'login']"),
    ({"outcome": "maybe"}, "outcome", "maybe"),
    ({"outcome": None}, "outcome", "None"),
    ({"outcome": ["success"]}, "outcome", "['success']"),
    ({"severity": "urgent"}, "severity", "urgent"),
    ({"actor": "alice"}, "actor", "alice"),
    ({"actor": {"user": 7}}, "actor.user", "7"),
    ({"actor": {"Bad Key": "x"}}, "actor", "Bad Key"),
    ({"attrs": [("k", "v")]}, "attrs", "k"),
    ({"attrs": {"nested": {"a": 1}}}, "attrs.nested", "dict"),
    ({"attrs": {"bad key": 1}}, "attrs", "bad key"),
    ({"attrs": {"x": float("nan")}}, "attrs.x", "nan"),
    ({"attrs": {"x": b"bytes"}}, "attrs.x", "bytes"),
    ({"attrs": {"x": [1, [2]]}}, "attrs.x[1]", "list"),
    ({"attrs": {f"k{i}": i for i in range(65)}}, "attrs", "65"),
    ({"attrs": {"x": 2**64}}, "attrs.x", str(2**64)),
    ({"attrs": {"s": "x" * 5000}}, "attrs.s", "5000"),
    ({"resource": 12}, "resource", "12"),
    ({"reason": "r" * 5000}, "reason", "5000"),
    ({"duration_us": -1}, "duration_us", "-1"),
    ({"duration_us": 1.5}, "duration_us", "1.5"),
]


@pytest.mark.parametrize("kwargs, field, shown", BAD_INPUT, ids=[f"{f}-{i}" for i, (_, f, _) in enumerate(BAD_INPUT)])
def test_bad_input_raises_value_error_naming_the_field_and_value(down_client, kwargs, field, shown):
    client = down_client()
    args = {"type": "authn.login", **kwargs}
    with pytest.raises(ValueError) as info:
        client.emit(args.pop("type"), **args)
    message = str(info.value)
    assert message.startswith(f"{field}:"), message
    assert shown in message, message
    assert client.stats()["invalid_input"] == 1
    assert client.stats()["queued"] == 0


def test_remembered_attr_keys_do_not_let_a_new_bad_key_or_value_through(down_client):
    """emit() skips the key pattern for keys it has seen; a new key and every value are still checked."""
    client = down_client()
    client.emit("authn.login", attrs={"alg": "ed25519", "n": 1}, actor={"user": "alice"})
    with pytest.raises(ValueError, match="^attrs: .*bad key"):
        client.emit("authn.login", attrs={"alg": "ed25519", "bad key": 1})
    with pytest.raises(ValueError, match=r"^attrs\.n: "):
        client.emit("authn.login", attrs={"alg": "ed25519", "n": 2**64})
    with pytest.raises(ValueError, match=r"^actor\.user: "):
        client.emit("authn.login", actor={"user": 7})
    assert client.stats()["invalid_input"] == 3


@pytest.mark.parametrize(
    "options, name",
    [
        ({"service": ""}, "service"),
        ({"service": None}, "service"),
        ({"queue_size": 0}, "queue_size"),
        ({"batch_size": -1}, "batch_size"),
        ({"ack_timeout": 0}, "ack_timeout"),
        ({"linger_ms": -5}, "linger_ms"),
        ({"max_linger_ms": float("nan")}, "max_linger_ms"),
        ({"on_full": "ignore"}, "on_full"),
        ({"on_full": "fallback"}, "fallback"),
        ({"fallback": 42}, "fallback"),
        ({"spool_max_bytes": 1000}, "spool_max_bytes"),
        ({"server_key": "short"}, "server_key"),
        ({"server_key": "x" * 40, "public_key": "p" * 40}, "public_key"),
        ({"endpoint": "localhost:7878"}, "endpoint"),
    ],
)
def test_bad_options_raise_value_error_naming_the_option(tmp_path, options, name):
    options = {"service": "unit", "spool_dir": str(tmp_path), **options}
    with pytest.raises(ValueError, match=f"^{name}:"):
        Client(**options)


def test_a_secret_key_never_appears_in_an_error(tmp_path):
    secret = "S3cr3t" * 5
    with pytest.raises(ValueError) as info:
        Client(service="unit", spool_dir=str(tmp_path), server_key="x" * 40, public_key="p" * 40, secret_key=secret)
    assert secret not in str(info.value)


def test_emit_returns_valid_unique_ids_and_never_raises_while_the_bus_is_down(down_client):
    client = down_client()
    ids = [client.emit("authn.login", "failure", actor={"user": "bob"}, reason="bad_password") for _ in range(2000)]
    assert all(ID_RE.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)
    wait_until(lambda: client.stats()["last_error"], 5, message="the client notices the bus is down")
    assert client.stats()["connected"] is False


def test_ids_stay_unique_across_threads(down_client):
    client = down_client(queue_size=100_000)
    results: list[list[str]] = [[] for _ in range(4)]

    def work(out):
        for _ in range(5000):
            out.append(client.emit("authz.check"))

    threads = [threading.Thread(target=work, args=(r,)) for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for r in results for i in r]
    assert len(set(ids)) == 20000


def test_drop_policy_counts_and_logs_what_it_gives_up_when_spool_and_queue_are_full(down_client, caplog):
    caplog.set_level(logging.WARNING, logger="secbus_sdk")
    client = down_client(queue_size=50, spool_max_bytes=64 * 1024)
    emitted = fill_until_full(client)
    extra = 300
    for _ in range(extra):
        client.emit("authn.login", attrs={"pad": "p" * 200})
    emitted += extra
    stats = client.stats()
    assert stats["dropped"] >= extra
    assert accounted(stats) == emitted, stats
    assert "dropped" in stats["last_error"]
    assert any("dropped" in r.getMessage() for r in caplog.records)


def test_block_policy_waits_up_to_block_timeout_then_drops_and_counts(down_client):
    client = down_client(queue_size=20, spool_max_bytes=64 * 1024, on_full="block", block_timeout=0.3)
    fill_until_full(client)
    before = client.stats()["dropped"]
    started = time.monotonic()
    client.emit("authn.login")  # the behaviour under test is the wait itself
    waited = time.monotonic() - started
    assert waited >= 0.3
    assert client.stats()["dropped"] == before + 1


def test_block_policy_releases_a_blocked_emit_at_close(down_client):
    client = down_client(queue_size=20, spool_max_bytes=64 * 1024, on_full="block")  # waits for ever
    fill_until_full(client)
    done = threading.Event()
    t = threading.Thread(target=lambda: (client.emit("authn.login"), done.set()))
    t.start()
    assert not done.wait(0.2), "emit should block while there is no room"
    client.close(0)
    assert done.wait(5), "close() must release emitters blocked on a full queue"


def test_fallback_policy_writes_overflow_to_a_jsonl_file(down_client, tmp_path):
    path = tmp_path / "overflow.jsonl"
    client = down_client(queue_size=20, spool_max_bytes=64 * 1024, on_full="fallback", fallback=str(path))
    fill_until_full(client)
    ids = [client.emit("authz.check", "failure", actor={"user": "eve"}, traceparent="00-" + "ab" * 16 + "-" + "cd" * 8 + "-01") for _ in range(25)]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["id"] for e in lines[-25:]] == ids
    assert path.stat().st_mode & 0o777 == 0o600  # owner only, whatever the umask
    last = lines[-1]
    assert last["type"] == "authz.check" and last["outcome"] == "failure" and last["actor"] == {"user": "eve"}
    assert last["trace_id"] == "ab" * 16 and last["span_id"] == "cd" * 8
    assert last["source"]["service"] == "unit" and last["source"]["platform"] == "python"
    assert client.stats()["fallback"] >= 25
    assert client.stats()["dropped"] == 0


def test_a_fallback_file_on_a_full_disk_never_gets_a_dropped_event_later_and_the_next_line_stands_alone(tmp_path):
    path = tmp_path / "overflow.jsonl"
    sink = FallbackSink(str(path))
    sink.write({"id": "first", "attrs": {}})
    room = path.stat().st_size + 20  # part of the next line fits, not all of it
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (room, hard))  # writes past it fail (EFBIG; Python ignores SIGXFSZ)
    try:
        with pytest.raises(OSError):
            sink.write({"id": "dropped", "attrs": {"pad": "x" * 200}})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    sink.write({"id": "third", "attrs": {}})
    sink.close()
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["id"] == "first" and json.loads(lines[-1])["id"] == "third"
    assert len(lines) == 3 and '"dropped"' in lines[1]  # the torn fragment, on its own line
    with pytest.raises(ValueError):
        json.loads(lines[1])


def test_fallback_callable_receives_events_and_its_failure_is_counted_not_raised(down_client):
    seen = []

    def sink(event):
        if event["attrs"]["n"] % 2:
            raise OSError("sink is full")
        seen.append(event["id"])

    client = down_client(queue_size=20, spool_max_bytes=64 * 1024, on_full="fallback", fallback=sink)
    fill_until_full(client)
    base = client.stats()
    for n in range(10):
        client.emit("authn.login", attrs={"n": n})
    stats = client.stats()
    assert stats["fallback"] - base["fallback"] == 5 == len(seen)
    assert stats["dropped"] - base["dropped"] == 5
    assert "sink is full" in stats["last_error"]


def test_close_while_the_bus_is_down_spools_everything_queued_and_returns_quickly(down_client, tmp_path):
    spool_dir = tmp_path / "spool"
    client = down_client(spool_dir=str(spool_dir), ack_timeout=0.1)
    wait_until(lambda: client.stats()["last_error"], 5, message="bus down noticed")
    for i in range(500):
        client.emit("authn.login", attrs={"i": i})
    started = time.monotonic()
    client.close()
    assert time.monotonic() - started < 2.0
    assert client.stats()["dropped"] == 0
    spool = Spool(str(spool_dir), 1 << 30)
    spool.load()
    assert spool.events == 500


def test_emit_after_close_is_counted_as_dropped_not_raised(down_client):
    client = down_client()
    client.close(0)
    client.emit("authn.login")
    assert client.stats()["dropped"] == 1


def test_logs_go_to_the_secbus_sdk_logger_only(down_client, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    client = down_client(ack_timeout=0.05)
    client.emit("authn.login", traceparent="not-a-traceparent")
    wait_until(lambda: client.stats()["last_error"], 5, message="bus down noticed")
    client.close(0)
    assert caplog.records
    assert {r.name for r in caplog.records if "secbus" in r.getMessage()} == {"secbus_sdk"}
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_invalid_traceparent_is_counted_and_does_not_raise(down_client):
    client = down_client()
    for bad in ["garbage", "00-" + "0" * 32 + "-" + "1" * 16 + "-01", 12]:
        client.emit("authn.login", traceparent=bad)
    assert client.stats()["invalid_traceparent"] == 3
    assert re.fullmatch(r"[0-9a-f-]{36}", client.emit("authn.login"))
    assert os.getpid() == client._source["pid"]


def test_sender_does_not_spin_while_the_spool_and_queue_are_full(down_client):
    client = down_client(queue_size=50, spool_max_bytes=64 * 1024)
    fill_until_full(client)
    wait_until(lambda: client.stats()["held"], 5, message="a batch held in memory")
    before = os.times()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        time.sleep(0.05)  # the behaviour under test is what the sender does meanwhile
    after = os.times()
    cpu = (after.user - before.user) + (after.system - before.system)
    assert cpu < 0.5, f"the process used {cpu:.2f}s of CPU in 1s while idle and full: a busy loop"


def test_events_are_built_valid_and_in_canonical_byte_order(down_client):
    """What the sender packs without sorting must equal the shared codec's canonical bytes."""
    import msgpack

    from secbus_sdk import wire
    from secbus_sdk.event import validate_event

    client = down_client(queue_size=100, ack_timeout=60)  # probing for 60 s: nothing leaves the queue
    cases = [
        {},
        {"actor": {"user": "u", "ip": "::1", "session": "s", "key_id": "k"}, "severity": "high"},
        {"attrs": {"z": 1.0, "a": [3.0, 1.5, "x", None, True], "m": -2**63, "big": 2**64 - 1}, "resource": "r", "reason": "why"},
        {"attrs": {}, "actor": {}, "duration_us": 0, "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"},
    ]
    packer = msgpack.Packer(use_bin_type=True)
    for kwargs in cases:
        client.emit("config.change", "unknown", **kwargs)
        item = client._q.items.pop()
        event = client._build_event(item)
        assert packer.pack(event) == wire.pack(validate_event(event)), kwargs


def test_the_batch_encoder_writes_the_canonical_bytes_of_every_event(down_client):
    """secbus_sdk.encode writes queued events with msgspec, a batch in one call: its bytes must be
    exactly the shared codec's canonical bytes of the validated events, whatever optional fields
    are set, and one event alone encodes as it does inside a batch."""
    import random

    import msgpack

    from secbus_sdk import wire
    from secbus_sdk.encode import EventEncoder
    from secbus_sdk.event import validate_event

    client = down_client(queue_size=5000, ack_timeout=60)  # probing for 60 s: nothing leaves the queue
    encoder = EventEncoder(client._source)
    rng = random.Random(7)
    scalars = [0, -1, 127, 128, -33, 2**31, -(2**63), 2**64 - 1, 1.5, 2.0, -0.0, True, False, None,
               "", "x", "é" * 40, "a" * 31, "b" * 32, "c" * 300]
    items = []
    for i in range(600):
        kwargs: dict = {}
        if rng.random() < 0.6:
            kwargs["actor"] = {k: rng.choice(["alice", "k-1", "10.0.0.1", "ü" * 5])
                               for k in rng.sample(["user", "key_id", "ip", "session"], rng.randint(0, 4))}
        if rng.random() < 0.7:
            keys = rng.sample(["algorithm", "message_bytes", "Z", "_a", "b.c", "n:1", "x-y", "k2"],
                              rng.randint(0, 6))
            kwargs["attrs"] = {k: (rng.sample(scalars[:14], 3) if rng.random() < 0.1 else rng.choice(scalars))
                               for k in keys}
        for name, values in (("resource", ["doc/1", "r" * 100, "ресурс"]), ("reason", ["bad_sig", "x"]),
                             ("severity", ["info", "critical"]), ("duration_us", [0, 5, 2**40])):
            if rng.random() < 0.4:
                kwargs[name] = rng.choice(values)
        if rng.random() < 0.3:
            kwargs["traceparent"] = f"00-{rng.getrandbits(128) or 1:032x}-{rng.getrandbits(64) or 1:016x}-01"
        client.emit(rng.choice(["authn.login", "config.change", "authz.check_x"]),
                    rng.choice(["success", "failure", "error", "unknown"]), **kwargs)
        items.append(client._q.items.pop())
    payload = encoder.batch(items)
    packer = msgpack.Packer(use_bin_type=True)
    expected = [wire.pack(validate_event(client._build_event(item))) for item in items]
    assert payload == packer.pack_array_header(len(items)) + b"".join(expected)
    for item, one in zip(items, expected):
        assert encoder.one(item) == one


def test_events_get_distinct_random_traces_and_keep_an_opentelemetry_span(down_client):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    from secbus_sdk.encode import EventEncoder

    client = down_client(queue_size=5000, ack_timeout=60)  # nothing leaves the queue meanwhile
    for _ in range(50):
        client.emit("authn.login")
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("request") as span:
        client.emit("authn.login")
        ctx = span.get_span_context()
    items = list(client._q.items)
    EventEncoder(client._source).batch(items)
    traces = [item.trace_id for item in items[:50]]
    assert len(set(traces)) == 50 and all(len(t) == 32 and t != "0" * 32 for t in traces)
    assert all(len(item.span_id) == 16 for item in items)
    assert (items[50].trace_id, items[50].span_id) == (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")


def test_a_batch_without_context_gets_distinct_ids_and_a_zero_draw_never_becomes_an_id(down_client, monkeypatch):
    """The all-new-traces batch path (ids cut from one draw in C), and its fallback when the draw
    holds an all-zero id, which W3C Trace Context forbids."""
    import msgspec

    from secbus_sdk import encode

    client = down_client(queue_size=5000, ack_timeout=60)  # nothing leaves the queue meanwhile
    for _ in range(300):
        client.emit("authn.login")
    items = list(client._q.items)
    encode.fill_trace_ids(items)
    assert len({item.trace_id for item in items}) == 300
    assert all(re.fullmatch("[0-9a-f]{32}", i.trace_id) and re.fullmatch("[0-9a-f]{16}", i.span_id) for i in items)

    monkeypatch.setattr(encode, "_randbytes", lambda n: bytes(n))  # every id of the draw all zero
    fresh = [msgspec.structs.replace(item, trace_id=None, span_id=None) for item in items[:3]]
    encode.fill_trace_ids(fresh)
    assert all(re.fullmatch("[0-9a-f]{32}", i.trace_id) and i.trace_id != "0" * 32 for i in fresh)
    assert all(re.fullmatch("[0-9a-f]{16}", i.span_id) and i.span_id != "0" * 16 for i in fresh)


def test_an_unusable_spool_dir_does_not_stop_the_app_events_wait_in_memory(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    client = Client(dead_endpoint(), service="unit", spool_dir=str(blocker / "spool"), ack_timeout=0.1, queue_size=30)
    try:
        wait_until(lambda: "spool unavailable" in (client.stats()["last_error"] or ""), 5, message="spool problem reported")
        for _ in range(200):
            client.emit("authn.login")
        stats = client.stats()
        assert stats["spooled"] == 0 and stats["dropped"] > 0
        assert accounted(stats) == 200
        assert any("spool unavailable" in r.getMessage() for r in caplog.records)
    finally:
        client.close(0)


def _spooled_ids(spool_dir) -> list[str]:
    import msgpack

    spool = Spool(str(spool_dir), 1 << 30)
    out = []
    while (rec := spool.next_record()) is not None:
        out += [e["id"] for e in msgpack.unpackb(rec.payload)]
    spool.close()
    return out


def test_batches_are_cut_at_the_byte_budget_keeping_order(down_client, tmp_path):
    spool_dir = tmp_path / "budget"
    client = down_client(spool_dir=str(spool_dir), spool_max_bytes=64 * 1024, ack_timeout=0.05)  # budget 16 KiB
    wait_until(lambda: client.stats()["last_error"], 5, message="bus down noticed")
    ids = [client.emit("authn.login", attrs={"i": i, "pad": "p" * 250}) for i in range(100)]  # ~45 KB: three batches
    client.close()
    assert client.stats()["spooled"] == 100 and client.stats()["dropped"] == 0
    assert _spooled_ids(spool_dir) == ids


def test_an_event_too_large_to_send_is_rejected_and_counted_the_rest_go_on(down_client, tmp_path):
    spool_dir = tmp_path / "large"
    client = down_client(spool_dir=str(spool_dir), ack_timeout=0.05)
    wait_until(lambda: client.stats()["last_error"], 5, message="bus down noticed")
    huge = {f"k{i}": ["x" * 1000] * 64 for i in range(20)}  # about 1.3 MB: over any batch
    before = client.emit("authn.login")
    client.emit("authn.login", attrs=huge)
    after = client.emit("authn.login")
    client.close()
    stats = client.stats()
    assert stats["rejected"] == 1 and stats["spooled"] == 2
    assert "over the 65536-byte limit" in stats["last_error"] or "bytes" in stats["last_error"]
    assert _spooled_ids(spool_dir) == [before, after]


def _readme_table_names(heading: str) -> set[str]:
    """The `names` in the first column of the table under ``## heading`` in sdk-python/README.md."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "sdk-python" / "README.md").read_text()
    section = readme.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    documented = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            documented.update(re.findall(r"`([a-z_]+)`", line.split("|")[1]))
    return documented


def test_stats_keys_are_exactly_the_ones_the_readme_documents(down_client):
    documented = _readme_table_names("stats()")
    required = {"queued", "sent", "acked", "duplicate", "rejected", "spooled", "replayed", "dropped",
                "fallback", "connected", "last_error"}  # the contract
    keys = set(down_client().stats())
    assert required <= keys
    assert keys == documented


def test_every_client_option_is_documented_in_the_readme():
    import inspect

    documented = _readme_table_names("Options")
    options = set(inspect.signature(Client.__init__).parameters) - {"self"}
    assert options == documented
