"""Alert outputs on their own, against real receivers: a local HTTP server for
the webhook, real UDP and TCP sockets for syslog, a real file.  (Through the
broker, end to end: test_alerting_broker.py.)"""

from __future__ import annotations

import json
import logging
import re
import resource
import socket

import pytest

from secbus.handlers._settings import SettingsError
from secbus.handlers.outputs.jsonl import FileOutput
from secbus.handlers.outputs.log import LogOutput
from secbus.handlers.outputs.syslog import SyslogOutput, format_rfc5424
from secbus.handlers.outputs.webhook import WebhookError, WebhookOutput

from .helpers import PluginHandle, Receiver

ALERT = {"id": "0193a3c4-5e6f-7a1b-8c2d-3e4f5a6b7c8d", "rule": "authn-brute-force", "severity": "high",
         "group": "tenant=default,actor.user=alice", "count": 5, "suppressed": 0, "first_ts": 1, "last_ts": 2,
         "event_ids": ["e1"], "trace_ids": ["4bf92f3577b34da6a3ce929d0e0e4736"], "summary": "5 failed logins", "seq": 1}


@pytest.fixture
def receiver():
    servers = []

    def make(script=None):
        servers.append(Receiver(script))
        return servers[-1]
    yield make
    for server in servers:
        server.close()


def webhook(tmp_path, **settings):
    out = WebhookOutput()
    out.startup(PluginHandle("alert-webhook", {"backoff": 0.01, **settings}, tmp_path))
    return out


def test_webhook_posts_the_alert_as_json_with_an_idempotency_key(receiver, tmp_path):
    server = receiver()
    out = webhook(tmp_path, url=server.url, headers={"Authorization": "Bearer s3cret"})
    out.on_alert(dict(ALERT))
    [request] = server.requests
    assert request["body"]["rule"] == "authn-brute-force" and request["body"]["id"] == ALERT["id"]
    assert request["headers"]["Idempotency-Key"] == ALERT["id"]
    assert request["headers"]["Authorization"] == "Bearer s3cret"
    assert request["headers"]["Content-Type"] == "application/json"


def test_webhook_retries_after_server_errors_then_delivers_once(receiver, tmp_path):
    server = receiver([503, 500])
    out = webhook(tmp_path, url=server.url)
    out.on_alert(dict(ALERT))
    assert len(server.requests) == 3 and out.delivered == 1 and out.attempts == 3


def test_webhook_raises_after_its_retries_so_the_runner_redelivers_and_never_loses_it(receiver, tmp_path, caplog):
    server = receiver([503] * 3)
    # the URL's path and query hold secrets too (as Slack's do): errors and logs name the host only
    out = webhook(tmp_path, url=server.url + "/services/s3cretpath?token=s3cretquery", retries=2,
                  headers={"Authorization": "Bearer s3cret"})
    with pytest.raises(WebhookError, match="not delivered after 3 attempts") as info:
        out.on_alert(dict(ALERT))
    out.on_alert(dict(ALERT))  # the runner calls again after its backoff: the receiver is back
    assert len(server.requests) == 4 and out.delivered == 1
    assert "s3cret" not in caplog.text and "s3cret" not in str(info.value)
    assert server.url.split("/")[2] in str(info.value)  # host:port, to tell which receiver failed


def test_webhook_to_a_closed_port_fails_fast_with_a_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = webhook(tmp_path, url=f"http://127.0.0.1:{port}/hook", retries=1, timeout=1)
    with pytest.raises(WebhookError, match="ConnectionRefusedError"):
        out.on_alert(dict(ALERT))


def test_webhook_does_not_retry_a_permanent_refusal(receiver, tmp_path):
    server = receiver([400])
    out = webhook(tmp_path, url=server.url)
    out.on_alert(dict(ALERT))
    assert len(server.requests) == 1 and out.rejected == 1


def test_webhook_honours_min_severity(receiver, tmp_path):
    server = receiver()
    out = webhook(tmp_path, url=server.url, min_severity="critical")
    out.on_alert(dict(ALERT))
    assert server.requests == []


@pytest.mark.parametrize("settings, fragment", [
    ({}, "url: required"),
    ({"url": "ftp://x"}, "expected an http:// or https:// URL, got 'ftp://x'"),
    ({"url": "hooks.example/services/s3cret"}, "got 'hooks.example/...'"),
    # a bad header is named, but no header value reaches the log or /healthz
    ({"url": "http://x", "headers": {"Authorization": "Bearer s3cret", "X-Retries": 3}},
     "headers: expected a table of header = \"value\" strings, got {'Authorization': '[masked]', 'X-Retries': '[masked]'}"),
    ({"url": "http://x", "timeout": "5"}, "timeout: expected a number"),
    ({"url": "http://x", "retry": 3}, "unknown setting(s) 'retry'"),
    ({"url": "http://x", "min_severity": "urgent"}, "min_severity: expected one of"),
])
def test_webhook_refuses_bad_settings_naming_key_and_value(tmp_path, settings, fragment):
    with pytest.raises((SettingsError, ValueError)) as info:
        WebhookOutput().startup(PluginHandle("alert-webhook", settings, tmp_path))
    assert fragment in str(info.value) and "s3cret" not in str(info.value)


RFC5424 = re.compile(rb'^<(\d+)>1 (\S+) (\S+) (\S+) (\S+) (\S+) (\[secbus@32473 [^\]]*(?:\\\][^\]]*)*\]) \xef\xbb\xbf(.*)$', re.S)


def test_syslog_message_follows_rfc5424_with_structured_data_and_escapes():
    alert = dict(ALERT, group='user="x]y\\z"', summary="connexion refusée")
    message = format_rfc5424(alert, facility=4, hostname="bus-1", procid="42")
    m = RFC5424.match(message)
    assert m, message
    assert int(m.group(1)) == 4 * 8 + 3  # auth, err
    assert re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", m.group(2))
    assert m.group(3) == b"bus-1" and m.group(4) == b"secbus" and m.group(5) == b"42"
    assert m.group(6) == b"authn-brute-force"
    assert b'group="user=\\"x\\]y\\\\z\\""' in m.group(7)
    assert m.group(8).decode("utf-8") == "connexion refusée"


def test_syslog_sends_one_datagram_per_alert_over_udp(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        out = SyslogOutput()
        out.startup(PluginHandle("alert-syslog", {"address": f"127.0.0.1:{server.getsockname()[1]}",
                                                  "facility": "local3"}, tmp_path))
        out.on_alert(dict(ALERT))
        data, _ = server.recvfrom(65536)
        out.shutdown()
    assert data.startswith(b"<%d>1 " % (19 * 8 + 3)) and b'rule="authn-brute-force"' in data


def test_syslog_over_tcp_uses_octet_counting_framing(tmp_path):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(5)
        out = SyslogOutput()
        out.startup(PluginHandle("alert-syslog", {"address": f"127.0.0.1:{server.getsockname()[1]}",
                                                  "protocol": "tcp"}, tmp_path))
        out.on_alert(dict(ALERT))
        out.on_alert(dict(ALERT, id="second"))
        conn, _ = server.accept()
        conn.settimeout(5)
        data = b""
        while data.count(b"secbus@32473") < 2:
            data += conn.recv(65536)
        conn.close()
        out.shutdown()
    frames = []
    while data:
        length, _, rest = data.partition(b" ")
        frames.append(rest[: int(length)])
        data = rest[int(length):]
    assert len(frames) == 2 and all(f.startswith(b"<35>1 ") for f in frames) and b'id="second"' in frames[1]


def test_syslog_to_a_closed_tcp_port_raises_so_the_runner_retries(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = SyslogOutput()
    out.startup(PluginHandle("alert-syslog", {"address": f"127.0.0.1:{port}", "protocol": "tcp", "timeout": 1}, tmp_path))
    with pytest.raises(OSError):
        out.on_alert(dict(ALERT))


def test_file_output_appends_json_lines_and_skips_redelivered_alerts_after_restart(tmp_path):
    first = FileOutput()
    first.startup(PluginHandle("alert-file", {}, tmp_path))
    first.on_alert(dict(ALERT, seq=1))
    first.on_alert(dict(ALERT, seq=2, id="b"))
    first.shutdown()
    second = FileOutput()
    second.startup(PluginHandle("alert-file", {}, tmp_path))
    second.on_alert(dict(ALERT, seq=2, id="b"))   # redelivered
    second.on_alert(dict(ALERT, seq=3, id="c"))
    second.shutdown()
    lines = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3]


def test_file_output_on_a_full_disk_writes_each_retried_alert_once_and_whole(tmp_path):
    out = FileOutput()
    out.startup(PluginHandle("alert-file", {}, tmp_path))
    out.on_alert(dict(ALERT, seq=1))
    path = tmp_path / "alerts.jsonl"
    room = path.stat().st_size + 100  # less than one more line: the next write tears it
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (room, hard))  # this process's file writes fail past it (EFBIG)
    try:
        for _ in range(3):  # the runner retries the same alert
            with pytest.raises(OSError):
                out.on_alert(dict(ALERT, seq=2, id="b"))
            assert path.stat().st_size == room - 100  # the torn part cut off each time
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    out.on_alert(dict(ALERT, seq=2, id="b"))  # room again: the retry succeeds
    out.on_alert(dict(ALERT, seq=3, id="c"))
    out.shutdown()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3]


def test_log_output_logs_at_the_level_of_the_severity(tmp_path, caplog):
    out = LogOutput()
    out.startup(PluginHandle("alert-log", {}, tmp_path))
    with caplog.at_level(logging.INFO, logger="secbus.alerts"):
        out.on_alert(dict(ALERT))
        out.on_alert(dict(ALERT, severity="critical"))
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.CRITICAL]
    assert "authn-brute-force" in caplog.records[0].getMessage()


def test_an_alert_with_a_value_json_cannot_hold_is_still_written_not_retried_forever(tmp_path):
    out = FileOutput()
    out.startup(PluginHandle("alert-file", {}, tmp_path))
    out.on_alert(dict(ALERT, seq=1, extra=b"\x00raw"))
    out.shutdown()
    [line] = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert json.loads(line)["extra"] == repr(b"\x00raw")


def test_outputs_take_a_sparse_third_party_alert_without_raising(tmp_path, caplog):
    sparse = {"id": 7, "rule": None, "trace_ids": [1, None], "summary": "x"}
    assert b"[secbus@32473" in format_rfc5424(sparse)
    out = LogOutput()
    out.startup(PluginHandle("alert-log", {}, tmp_path))
    with caplog.at_level(logging.INFO, logger="secbus.alerts"):
        out.on_alert(sparse)
    assert caplog.records[0].levelno == logging.WARNING
