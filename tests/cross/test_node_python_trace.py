"""A Node front end and a Python back end handling one request meet in one trace.

The Node script (``node_frontend.mjs``, the real ``@secbus/sdk``) starts a
trace, emits its events, and calls a Python HTTP back end (stdlib
``http.server`` using the real ``secbus_sdk.Client``) with a W3C
``traceparent`` header; the back end emits its events with that header.
Both publish to one real broker. The broker's correlator closes the trace
after ``trace_idle_ms`` and it must hold every event of both services, with
platforms ``node`` and ``python`` and the ``cross_platform`` flag;
``secbus trace ID --json`` must print them all.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from secbus_sdk import Client

pytest.importorskip("secbus.ingest", reason="the broker is not in this tree yet")
_support = pytest.importorskip("support.broker", reason="tests/support/broker.py is not in this tree yet")
start_broker, wait_until, secbus_command = _support.start_broker, _support.wait_until, _support.secbus_command

HERE = Path(__file__).resolve().parent
FRONTEND = HERE / "node_frontend.mjs"
NODE = shutil.which("node")
ZEROMQ = HERE.parents[1] / "sdk-js" / "node_modules" / "zeromq"

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
    pytest.mark.skipif(not ZEROMQ.exists(), reason="sdk-js dependencies are not installed (make test runs npm ci)"),
]


class Backend:
    """A Python service that verifies the invoice signature for the front end."""

    def __init__(self, bus: Client):
        self.bus = bus
        self.seen_traceparents: list[str | None] = []
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("content-length", 0))
                request = json.loads(self.rfile.read(length))
                traceparent = self.headers.get("traceparent")
                backend.seen_traceparents.append(traceparent)
                with backend.bus.verify("security.signature_check", resource=f"invoice/{request['invoice']}", traceparent=traceparent):
                    pass  # the real back end verifies the invoice signature here
                ids = []
                ids.append(backend.bus.emit("authz.check", "success", actor={"user": request["user"]}, resource="invoice/read", traceparent=traceparent))
                body = json.dumps({"ok": True, "ids": ids}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/verify"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _secbus_trace(broker, trace_id: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        secbus_command() + ["trace", trace_id, "--data-dir", str(broker.data_dir), "--json"],
        capture_output=True, text=True, timeout=60,
    )


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """Run the request once: Node front end -> HTTP with traceparent -> Python back end."""
    tmp = tmp_path_factory.mktemp("cross")
    broker = start_broker(tmp, config={"correlation": {"trace_idle_ms": 300, "expire_interval_ms": 50}}, handlers=[])
    bus = Client(broker.ingest, service="billing-backend", spool_dir=str(tmp / "py-spool"))
    try:
        with Backend(bus) as backend:
            node = subprocess.run(
                [NODE, str(FRONTEND), broker.ingest, backend.url, str(tmp / "node-spool")],
                capture_output=True, text=True, timeout=60,
            )
        assert node.returncode == 0, node.stderr
        front = json.loads(node.stdout.strip().splitlines()[-1])
        assert front["flushed"], front
        assert bus.flush(10), bus.stats()
    finally:
        bus.close(5)
    yield broker, front, backend
    broker.stop()


@pytest.mark.timeout(120)
def test_both_halves_reach_the_broker_with_the_trace_id_from_the_header(scenario):
    broker, front, backend = scenario
    trace_id = front["trace_id"]
    assert backend.seen_traceparents and backend.seen_traceparents[0].split("-")[1] == trace_id
    events = [e for e in broker.events() if e["trace_id"] == trace_id]
    assert len(events) == 5  # node: login, token verify, authz; python: signature check, authz
    assert {e["source"]["platform"] for e in events} == {"node", "python"}
    assert {e["source"]["service"] for e in events} == {"web-frontend", "billing-backend"}
    assert set(front["ids"]) <= {e["id"] for e in events}


@pytest.mark.timeout(120)
def test_node_frontend_and_python_backend_events_close_into_one_cross_platform_trace(scenario):
    pytest.importorskip("secbus.consumers.correlator", reason="the broker's correlator runner is not in this tree yet")
    broker, front, _ = scenario
    trace_id = front["trace_id"]

    # The correlator closes the trace once it has been idle for trace_idle_ms.
    def closed():
        return [t for t in broker.traces() if t["trace_id"] == trace_id]

    traces = wait_until(closed, 30, message=lambda: f"a closed trace {trace_id}; health: {broker.healthz()}")
    assert len(traces) == 1, traces
    trace = traces[0]
    assert trace["platforms"] == ["node", "python"]
    assert "cross_platform" in trace["flags"]
    assert trace["services"] == ["billing-backend", "web-frontend"]
    assert trace["event_count"] == 5
    assert {e["source"]["platform"] for e in trace["events"]} == {"node", "python"}
    ts = [e["ts"] for e in trace["events"]]
    assert ts == sorted(ts), "the trace's events are in time order"


@pytest.mark.timeout(120)
def test_secbus_trace_shows_the_node_and_python_events(scenario):
    broker, front, _ = scenario
    if "trace" not in subprocess.run(secbus_command() + ["--help"], capture_output=True, text=True).stdout:
        pytest.skip("`secbus trace` is not in this tree yet")
    trace_id = front["trace_id"]
    shown = wait_until(lambda: (r := _secbus_trace(broker, trace_id)).returncode == 0 and r.stdout.count("\n") >= 5 and r,
                       30, message=f"secbus trace {trace_id}")
    events = [json.loads(line) for line in shown.stdout.splitlines() if line.strip()]
    assert len(events) == 5
    assert {e["source"]["platform"] for e in events} == {"node", "python"}
    assert {e["trace_id"] for e in events} == {trace_id}
    assert set(front["ids"]) <= {e["id"] for e in events}
