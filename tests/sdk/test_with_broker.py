"""The SDK against a real broker process: delivery, outages on either side, restarts, policies.

Every test here runs ``secbus serve`` in a subprocess (``tests/support/broker.py``)
and checks what the broker stored (``BrokerProcess.events()``), so "stored
exactly once" means: every emitted id is in the log and no id is there twice.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from secbus_sdk import Client

# The broker and its test support land in their own commits; until then these tests skip.
pytest.importorskip("secbus.ingest", reason="the broker is not in this tree yet")
_support = pytest.importorskip("support.broker", reason="tests/support/broker.py is not in this tree yet")
BrokerProcess, start_broker = _support.BrokerProcess, _support.start_broker

from .helpers import free_port, wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def clients():
    made: list[Client] = []

    def make(endpoint: str, spool_dir, **options) -> Client:
        options.setdefault("service", "sdk-test")
        c = Client(endpoint, spool_dir=str(spool_dir), **options)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close(0)


@pytest.fixture
def later_broker(tmp_path):
    """A broker configured on a free port but not started: the bus is down at first."""
    port = free_port()
    broker = BrokerProcess(tmp_path / "broker", config={"ingest": {"endpoint": f"tcp://127.0.0.1:{port}"}}, handlers=[])
    broker.endpoint = f"tcp://127.0.0.1:{port}"
    yield broker
    if broker.running:
        broker.stop()


def stored_ids(broker: BrokerProcess) -> list[str]:
    return [e["id"] for e in broker.events()]


def assert_exactly_once(broker: BrokerProcess, ids) -> list[dict]:
    events = broker.events()
    counts = collections.Counter(e["id"] for e in events)
    twice = [i for i, n in counts.items() if n > 1]
    missing = set(ids) - set(counts)
    assert not twice, f"{len(twice)} event(s) stored more than once, e.g. {twice[:3]}"
    assert not missing, f"{len(missing)} event(s) never stored, e.g. {sorted(missing)[:3]}"
    return events


def test_events_are_stored_with_their_fields_and_acknowledged(tmp_path, clients):
    broker = start_broker(tmp_path, handlers=[])
    client = clients(broker.ingest, tmp_path / "spool")
    ids = [
        client.emit("authn.login", "failure", actor={"user": "alice", "ip": "203.0.113.7"}, reason="bad_password",
                    resource="app/login", severity="medium", attrs={"attempt": i, "ratio": 2.0, "tags": ["a", "b"]})
        for i in range(300)
    ]
    assert client.flush(20)
    events = assert_exactly_once(broker, ids)
    first = next(e for e in events if e["id"] == ids[0])
    assert first["type"] == "authn.login" and first["outcome"] == "failure"
    assert first["actor"] == {"ip": "203.0.113.7", "user": "alice"}
    assert first["attrs"] == {"attempt": 0, "ratio": 2, "tags": ["a", "b"]}
    assert first["source"]["platform"] == "python" and first["source"]["service"] == "sdk-test"
    assert first["source"]["pid"] == os.getpid() and first["source"]["sdk"].startswith("secbus-sdk/")
    stats = client.stats()
    assert stats["acked"] == 300 and stats["duplicate"] == 0 and stats["rejected"] == 0
    assert stats["connected"] is True and stats["spooled"] == 0
    broker.stop()


def test_bus_down_at_start_then_10k_events_are_all_stored_exactly_once(tmp_path, clients, later_broker):
    client = clients(later_broker.endpoint, tmp_path / "spool", ack_timeout=0.5)
    ids = [client.emit("authn.token_check", attrs={"n": i}) for i in range(10_000)]
    wait_until(lambda: client.stats()["spooled"] > 0, 10, message="events spooled while the bus is down")
    later_broker.start().wait_ready()
    assert client.flush(60), client.stats()
    assert_exactly_once(later_broker, ids)
    assert len(stored_ids(later_broker)) == 10_000
    stats = client.stats()
    assert stats["dropped"] == 0 and stats["spool_events"] == 0 and stats["replayed"] > 0


def test_broker_killed_mid_stream_and_restarted_loses_nothing_and_stores_nothing_twice(tmp_path, clients):
    broker = start_broker(tmp_path, handlers=[])
    client = clients(broker.ingest, tmp_path / "spool", ack_timeout=0.5, batch_size=50)
    ids: list[str] = []
    halfway = threading.Event()
    resume = threading.Event()

    def stream():
        for i in range(6000):
            ids.append(client.emit("authz.permission_check", attrs={"n": i}))
            if i == 2000:
                halfway.set()
                resume.wait(30)

    t = threading.Thread(target=stream)
    t.start()
    assert halfway.wait(30)
    wait_until(lambda: client.stats()["in_flight"] > 0 or client.stats()["acked"] > 0, 10, message="traffic in flight")
    broker.kill()  # SIGKILL: no shutdown code runs
    resume.set()  # keep emitting while the broker is dead
    wait_until(lambda: not client.stats()["connected"], 10, message="client notices the broker is gone")
    broker.start().wait_ready()
    t.join(60)
    assert client.flush(60), client.stats()
    events = assert_exactly_once(broker, ids)
    assert len(events) == 6000
    stats = client.stats()
    assert stats["spooled"] > 0 and stats["replayed"] > 0, stats  # the outage really went through the spool
    assert stats["dropped"] == 0 and stats["spool_events"] == 0


CHILD = textwrap.dedent(
    """
    import sys, threading, time
    from secbus_sdk import Client
    endpoint, spool_dir, ids_path = sys.argv[1:4]
    client = Client(endpoint, service="sdk-test", spool_dir=spool_dir, ack_timeout=0.2)
    ids = [client.emit("authn.login", attrs={"n": i}) for i in range(500)]
    with open(ids_path, "w") as f:
        f.write("\\n".join(ids))
    deadline = time.monotonic() + 30
    while client.stats()["spooled"] < 500 and time.monotonic() < deadline:
        time.sleep(0.01)  # polling, bounded by the deadline above
    print("spooled", client.stats()["spooled"], flush=True)
    threading.Event().wait()  # until the test kills this process
    """
)


def test_spool_left_by_a_killed_client_process_is_replayed_by_the_next_client(tmp_path, clients, later_broker):
    spool_dir = tmp_path / "spool"
    ids_path = tmp_path / "ids.txt"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, later_broker.endpoint, str(spool_dir), str(ids_path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "spooled 500", line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ids = ids_path.read_text().split()
    assert len(ids) == 500
    later_broker.start().wait_ready()
    client = clients(later_broker.endpoint, spool_dir)
    assert client.flush(30), client.stats()
    assert_exactly_once(later_broker, ids)
    assert client.stats()["replayed"] >= 500


FULL_SPOOL_DISK = textwrap.dedent(
    """
    import json, resource, sys, time
    from secbus_sdk import Client
    endpoint, spool_dir = sys.argv[1:3]
    client = Client(endpoint, service="sdk-test", spool_dir=spool_dir, ack_timeout=0.2, batch_size=100)
    client.emit("authn.login")  # opens the spool while files can still grow
    # the spool's disk is full from here: every write past 8 KiB fails (EFBIG; Python ignores SIGXFSZ)
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, resource.RLIM_INFINITY))
    ids = [client.emit("authn.login", attrs={"n": i}) for i in range(3000)]
    deadline = time.monotonic() + 30
    while "failed" not in (client.stats()["last_error"] or "") and time.monotonic() < deadline:
        time.sleep(0.01)  # polling, bounded by the deadline above
    print(json.dumps({"ids": ids, "error": client.stats()["last_error"]}), flush=True)
    sys.stdin.readline()  # the test starts the broker
    delivered = client.flush(60)
    print(json.dumps({"delivered": delivered, "stats": client.stats()}), flush=True)
    """
)


def test_a_full_spool_disk_while_the_bus_is_down_keeps_events_in_memory_and_delivers_them(tmp_path, later_broker):
    proc = subprocess.Popen([sys.executable, "-c", FULL_SPOOL_DISK, later_broker.endpoint, str(tmp_path / "spool")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        held = json.loads(proc.stdout.readline())
        assert "spool" in held["error"] and "File too large" in held["error"], held["error"]
        later_broker.start().wait_ready()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        done = json.loads(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
    assert done["delivered"], done["stats"]
    assert done["stats"]["dropped"] == 0
    assert_exactly_once(later_broker, held["ids"])
    assert len(stored_ids(later_broker)) == 3001


def test_drop_policy_under_a_burst_stores_everything_it_did_not_count_as_dropped(tmp_path, clients, later_broker):
    client = clients(later_broker.endpoint, tmp_path / "spool", queue_size=100, spool_max_bytes=64 * 1024, ack_timeout=0.3)
    ids = []
    for i in range(3000):  # a burst while the bus is down: the spool and then the queue fill up
        ids.append(client.emit("authn.login", attrs={"n": i, "pad": "p" * 200}))
    dropped = client.stats()["dropped"]
    assert dropped > 0
    later_broker.start().wait_ready()
    assert client.flush(30), client.stats()
    stored = set(stored_ids(later_broker))
    assert stored <= set(ids)
    assert len(stored) == len(ids) - dropped == len(stored_ids(later_broker))


def test_block_policy_loses_nothing_under_a_burst(tmp_path, clients, later_broker):
    client = clients(later_broker.endpoint, tmp_path / "spool", queue_size=100, spool_max_bytes=64 * 1024,
                     ack_timeout=0.3, on_full="block")
    ids: list[str] = []
    t = threading.Thread(target=lambda: ids.extend(client.emit("authn.login", attrs={"n": i, "pad": "p" * 200}) for i in range(3000)))
    t.start()
    # The burst fills the spool and the queue, then emit() waits: force that state before the bus comes back.
    wait_until(lambda: client.stats()["queued"] >= 100 and client.stats()["held"], 20, message="emitter blocked on a full queue")
    assert t.is_alive()
    later_broker.start().wait_ready()
    t.join(60)
    assert not t.is_alive()
    assert client.flush(30), client.stats()
    assert client.stats()["dropped"] == 0
    assert_exactly_once(later_broker, ids)
    assert len(stored_ids(later_broker)) == 3000


def test_fallback_policy_under_a_burst_puts_every_event_in_the_log_or_the_fallback_file(tmp_path, clients, later_broker):
    path = tmp_path / "fallback.jsonl"
    client = clients(later_broker.endpoint, tmp_path / "spool", queue_size=100, spool_max_bytes=64 * 1024,
                     ack_timeout=0.3, on_full="fallback", fallback=str(path))
    ids = [client.emit("authn.login", attrs={"n": i, "pad": "p" * 200}) for i in range(3000)]
    later_broker.start().wait_ready()
    assert client.flush(30), client.stats()
    stored = stored_ids(later_broker)
    in_file = [json.loads(line)["id"] for line in path.read_text().splitlines()]
    assert in_file, "the burst overflowed into the fallback file"
    assert not set(stored) & set(in_file), "an event is in both places"
    assert sorted(stored + in_file) == sorted(ids)
    assert client.stats()["fallback"] == len(in_file) and client.stats()["dropped"] == 0


def test_a_forked_child_publishes_on_its_own_and_never_resends_the_parents_events(tmp_path, clients):
    broker = start_broker(tmp_path, handlers=[])
    client = clients(broker.ingest, tmp_path / "spool", linger_ms=200)
    assert client.flush(10)
    parent_ids = [client.emit("authn.login", attrs={"who": "parent"}) for _ in range(50)]  # still queued at fork
    result = tmp_path / "child.json"
    pid = os.fork()
    if pid == 0:  # the child: publish, report, leave without running pytest's cleanup
        code = 1
        try:
            child_ids = [client.emit("authn.login", attrs={"who": "child"}) for _ in range(100)]
            ok = client.flush(20)
            s = client.stats()
            result.write_text(json.dumps({"ids": child_ids, "ok": ok, "stats": s, "pid": os.getpid()}))
            client.close(5)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    child = json.loads(result.read_text())
    assert child["ok"], child
    assert child["stats"]["acked"] == 100 and child["stats"]["duplicate"] == 0, child["stats"]
    assert client.flush(10)
    events = assert_exactly_once(broker, parent_ids + child["ids"])
    by_id = {e["id"]: e for e in events}
    assert {by_id[i]["source"]["pid"] for i in child["ids"]} == {child["pid"]}
    assert {by_id[i]["source"]["pid"] for i in parent_ids} == {os.getpid()}
    assert client.stats()["acked"] == 50


def test_trace_context_from_span_traceparent_and_a_bad_traceparent(tmp_path, clients):
    from opentelemetry.sdk.trace import TracerProvider

    broker = start_broker(tmp_path, handlers=[])
    client = clients(broker.ingest, tmp_path / "spool")
    tracer = TracerProvider().get_tracer("sdk-test")
    with tracer.start_as_current_span("verify") as span:
        ctx = span.get_span_context()
        from_span = client.emit("security.signature_check")
        tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
        explicit = client.emit("security.signature_check", traceparent=f"00-{tid}-{sid}-01")  # wins over the span
    bad = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"
    bad1 = client.emit("security.signature_check", traceparent=bad)
    bad2 = client.emit("security.signature_check", traceparent=bad)
    assert client.flush(10)
    by_id = {e["id"]: e for e in broker.events()}
    assert (by_id[from_span]["trace_id"], by_id[from_span]["span_id"]) == (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
    assert (by_id[explicit]["trace_id"], by_id[explicit]["span_id"]) == (tid, sid)
    new1, new2 = by_id[bad1]["trace_id"], by_id[bad2]["trace_id"]
    assert new1 != new2 and tid not in (new1, new2), "an invalid traceparent starts a new trace each time"
    assert client.stats()["invalid_traceparent"] == 2


def test_verify_and_verified_record_outcomes_without_touching_results_or_exceptions(tmp_path, clients):
    import asyncio

    broker = start_broker(tmp_path, handlers=[])
    client = clients(broker.ingest, tmp_path / "spool")

    with client.verify("security.signature_check", resource="doc/1") as ok:
        pass
    with client.verify("security.signature_check") as failed:
        failed.fail("bad_signature")
    with pytest.raises(KeyError) as raised:
        with client.verify("security.signature_check") as errored:
            raise KeyError("kid-7")
    assert raised.value.args == ("kid-7",)

    class InvalidSignature(Exception):
        pass

    with pytest.raises(InvalidSignature):
        with client.verify("security.signature_check", fail_on=(InvalidSignature,)) as rejected:
            raise InvalidSignature()

    @client.verified("authz.permission_check", falsy_is_failure=True)
    def allowed(user):
        return user == "alice"

    @client.verified("authn.token_check")
    async def token(value):
        await asyncio.sleep(0)
        return {"sub": value}

    assert allowed("alice") is True and allowed("bob") is False
    assert asyncio.run(token("t1")) == {"sub": "t1"}

    async def async_block():
        async with client.verify("authn.token_check") as v:
            v.fail("expired")
        return v

    av = asyncio.run(async_block())
    assert client.flush(10)
    events = {e["id"]: e for e in broker.events()}
    assert events[ok.event_id]["outcome"] == "success" and events[ok.event_id]["resource"] == "doc/1"
    assert (events[failed.event_id]["outcome"], events[failed.event_id]["reason"]) == ("failure", "bad_signature")
    assert (events[errored.event_id]["outcome"], events[errored.event_id]["reason"]) == ("error", "KeyError")
    assert (events[rejected.event_id]["outcome"], events[rejected.event_id]["reason"]) == ("failure", "InvalidSignature")
    assert (events[av.event_id]["outcome"], events[av.event_id]["reason"]) == ("failure", "expired")
    by_type = collections.Counter((e["type"], e["outcome"], e.get("reason")) for e in events.values())
    assert by_type[("authz.permission_check", "success", None)] == 1
    assert by_type[("authz.permission_check", "failure", "falsy_result")] == 1
    assert by_type[("authn.token_check", "success", None)] == 1
    assert all(isinstance(e["duration_us"], int) and e["duration_us"] >= 0 for e in events.values())


def test_events_the_broker_rejects_are_counted_and_never_resent(tmp_path, clients):
    broker = start_broker(tmp_path, config={"limits": {"max_string_bytes": 100}}, handlers=[])
    client = clients(broker.ingest, tmp_path / "spool")
    good = client.emit("authn.login", resource="short")
    bad = client.emit("authn.login", resource="x" * 200)  # valid for the SDK, over this broker's limit
    assert client.flush(10)
    stats = client.stats()
    assert stats["rejected"] == 1 and stats["acked"] == 1 and stats["sent"] == 2
    assert "resource" in stats["last_error"]
    assert stored_ids(broker) == [good]
    assert bad not in stored_ids(broker)


def test_adaptive_linger_grows_while_traffic_flows_and_a_lone_event_after_a_pause_waits_linger_ms(tmp_path, clients):
    """Sustained traffic: the linger period doubles up to max_linger_ms (fewer, fuller batches);
    a period without events brings it back, so the next lone event is not held for max_linger_ms.
    Nothing is lost or stored twice meanwhile."""
    broker = start_broker(tmp_path, handlers=[])
    client = clients(broker.ingest, tmp_path / "spool", linger_ms=5, max_linger_ms=1000)
    sender = client._sender
    assert client.flush(10)
    ids: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            ids.append(client.emit("authn.login"))
            time.sleep(0.005)  # pacing: a steady stream under batch_size per second, not a synchronisation

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        wait_until(lambda: sender._linger >= 1.0, 20, message="linger period grown to max_linger_ms")
    finally:
        stop.set()
        thread.join()
    wait_until(lambda: client.stats()["acked"] == len(ids), 20, message=lambda: f"all acknowledged: {client.stats()}")
    wait_until(lambda: sender._linger == 0.005, 5, message="linger period back to linger_ms after a quiet period")
    started = time.monotonic()
    ids.append(client.emit("authn.login"))
    wait_until(lambda: client.stats()["acked"] == len(ids), 5, message="the lone event acknowledged")
    # Generous bound for a loaded test machine; held for the grown period it would take >= 1 s.
    assert time.monotonic() - started < 0.9
    assert_exactly_once(broker, ids)
    assert client.stats()["duplicate"] == 0


def test_batches_too_large_for_the_broker_are_split_until_they_fit(tmp_path, clients, caplog):
    caplog.set_level("INFO", logger="secbus_sdk")
    broker = start_broker(tmp_path, config={"limits": {"max_batch_events": 10}}, handlers=[])
    client = clients(broker.ingest, tmp_path / "spool", batch_size=256, linger_ms=50)
    ids = [client.emit("authn.login", attrs={"n": i}) for i in range(300)]
    assert client.flush(20), client.stats()
    assert_exactly_once(broker, ids)
    stats = client.stats()
    assert stats["acked"] == 300 and stats["rejected"] == 0
    assert any("splitting" in r.getMessage() for r in caplog.records)


EXITING = textwrap.dedent(
    """
    import sys
    from secbus_sdk import Client
    endpoint, spool_dir, ids_path = sys.argv[1:4]
    client = Client(endpoint, service="sdk-test", spool_dir=spool_dir, ack_timeout=0.3, linger_ms=1000)
    ids = [client.emit("authn.login", attrs={"n": i}) for i in range(200)]
    with open(ids_path, "w") as f:
        f.write("\\n".join(ids))
    # no flush(), no close(): the atexit hook must deliver or spool them
    """
)


def test_normal_exit_without_close_delivers_everything_through_the_atexit_hook(tmp_path):
    broker = start_broker(tmp_path, handlers=[])
    ids_path = tmp_path / "ids.txt"
    subprocess.run([sys.executable, "-c", EXITING, broker.ingest, str(tmp_path / "spool"), str(ids_path)], check=True, timeout=60)
    assert_exactly_once(broker, ids_path.read_text().split())


def test_normal_exit_while_the_bus_is_down_spools_everything_for_the_next_client(tmp_path, clients, later_broker):
    ids_path = tmp_path / "ids.txt"
    spool_dir = tmp_path / "spool"
    subprocess.run([sys.executable, "-c", EXITING, later_broker.endpoint, str(spool_dir), str(ids_path)], check=True, timeout=60)
    later_broker.start().wait_ready()
    client = clients(later_broker.endpoint, spool_dir)
    assert client.flush(30), client.stats()
    assert_exactly_once(later_broker, ids_path.read_text().split())


def test_clients_restarting_during_a_long_outage_lose_nothing_spooled_by_earlier_ones(tmp_path, clients, later_broker):
    spool_dir = tmp_path / "spool"
    ids: list[str] = []
    for generation in range(3):  # three process lifetimes, all while the broker is down
        client = Client(later_broker.endpoint, service="sdk-test", spool_dir=str(spool_dir), ack_timeout=0.2,
                        spool_max_bytes=2 * 1024 * 1024, stats_interval=0)  # exact spool counts
        ids += [client.emit("authn.login", attrs={"gen": generation, "n": i, "pad": "p" * 100}) for i in range(1500)]
        wait_until(lambda: client.stats()["spooled"] >= 1500, 20, message=f"generation {generation} spooled")
        assert client.stats()["spool_events"] == 1500 * (generation + 1)
        client.close()
        assert client.stats()["dropped"] == 0
    later_broker.start().wait_ready()
    last = clients(later_broker.endpoint, spool_dir)
    assert last.flush(60), last.stats()
    assert_exactly_once(later_broker, ids)
    assert len(stored_ids(later_broker)) == 4500


def test_an_event_over_the_broker_event_limit_is_rejected_alone(tmp_path, clients):
    broker = start_broker(tmp_path, handlers=[])
    client = clients(broker.ingest, tmp_path / "spool")
    big = {f"k{i}": "x" * 2000 for i in range(40)}  # about 80 KB: over 64 KiB, within a batch
    ids = [client.emit("authn.login"), client.emit("authn.login", attrs=big), client.emit("authn.login")]
    assert client.flush(10)
    assert stored_ids(broker) == [ids[0], ids[2]]
    assert client.stats()["rejected"] == 1 and client.stats()["acked"] == 2


def test_an_event_that_cannot_be_encoded_is_refused_alone_and_the_batch_goes_on(tmp_path, clients, caplog):
    broker = start_broker(tmp_path, handlers=[])
    client = clients(broker.ingest, tmp_path / "spool")
    before = [client.emit("authn.login") for _ in range(5)]
    bad = client.emit("authn.login", resource="half a surrogate \ud800")  # a str, but not encodable as UTF-8
    after = [client.emit("authn.login") for _ in range(5)]
    assert client.flush(10)
    assert stored_ids(broker) == before + after
    stats = client.stats()
    assert stats["rejected"] == 1 and stats["acked"] == 10
    assert f"event {bad} cannot be encoded" in stats["last_error"]
    assert any(bad in r.getMessage() for r in caplog.records)


def test_many_threads_emitting_through_a_broker_crash_store_each_event_once(tmp_path, clients):
    broker = start_broker(tmp_path, handlers=[])
    client = clients(broker.ingest, tmp_path / "spool", ack_timeout=0.5)
    per_thread = 1500
    results: list[list[str]] = [[] for _ in range(4)]
    go_on = threading.Event()

    def work(out: list[str]):
        for i in range(per_thread):
            out.append(client.emit("authz.permission_check", attrs={"i": i}))
            if i == per_thread // 3:
                go_on.wait(30)

    threads = [threading.Thread(target=work, args=(r,)) for r in results]
    for t in threads:
        t.start()
    wait_until(lambda: all(len(r) > per_thread // 3 for r in results), 30, message="every thread a third through")
    broker.kill()
    go_on.set()
    broker.start().wait_ready()
    for t in threads:
        t.join(60)
    assert client.flush(60), client.stats()
    ids = [i for r in results for i in r]
    assert len(set(ids)) == 4 * per_thread
    assert_exactly_once(broker, ids)
    assert len(stored_ids(broker)) == 4 * per_thread


def test_a_frozen_broker_sigstop_then_sigcont_loses_nothing_and_stores_nothing_twice(tmp_path, clients):
    broker = start_broker(tmp_path, handlers=[])
    client = clients(broker.ingest, tmp_path / "spool", ack_timeout=0.3, backoff_max=0.3)
    ids = [client.emit("authn.login", attrs={"n": i}) for i in range(500)]
    assert client.flush(10)
    broker.signal(signal.SIGSTOP)  # alive, connection open, answers nothing
    try:
        ids += [client.emit("authn.login", attrs={"n": i}) for i in range(500, 1500)]
        wait_until(lambda: client.stats()["spooled"] > 0 and not client.stats()["connected"], 10,
                   message="client gives up on the frozen broker and spools")
        ids += [client.emit("authn.login", attrs={"n": i}) for i in range(1500, 2000)]
    finally:
        broker.signal(signal.SIGCONT)
    assert client.flush(30), client.stats()
    assert_exactly_once(broker, ids)
    assert len(stored_ids(broker)) == 2000
