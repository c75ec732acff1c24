"""Without CURVE (or, for HTTP, a token) the broker listens on loopback only unless allow_insecure."""

from __future__ import annotations

import pytest

from secbus.auth.binding import InsecureBindError, check_bind, host_of_endpoint, is_loopback_host


@pytest.mark.parametrize(
    "endpoint", ["tcp://127.0.0.1:7878", "tcp://127.0.0.2:0", "tcp://localhost:7878", "tcp://[::1]:7878", "ipc:///tmp/x", "inproc://x"]
)
def test_loopback_and_local_transports_bind_without_security(endpoint):
    assert check_bind("ingest", endpoint, secured=False, allow_insecure=False, how_to_secure="CURVE") is None


@pytest.mark.parametrize("endpoint", ["tcp://*:7878", "tcp://0.0.0.0:7878", "tcp://[::]:7878", "tcp://10.1.2.3:7878", "tcp://192.168.0.1:0"])
def test_non_loopback_bind_without_security_is_refused_with_the_fix(endpoint):
    with pytest.raises(InsecureBindError) as info:
        check_bind("ingest", endpoint, secured=False, allow_insecure=False, how_to_secure="CURVE")
    text = str(info.value)
    assert endpoint in text and "allow_insecure = true" in text and "127.0.0.1" in text


def test_allow_insecure_binds_but_warns():
    warning = check_bind("feed", "tcp://0.0.0.0:7879", secured=False, allow_insecure=True, how_to_secure="CURVE")
    assert warning.startswith("WARNING: feed tcp://0.0.0.0:7879") and "allow_insecure = true" in warning


def test_secured_listener_may_bind_anywhere():
    assert check_bind("ingest", "tcp://0.0.0.0:7878", secured=True, allow_insecure=False, how_to_secure="CURVE") is None


def test_endpoint_hosts_are_parsed():
    assert host_of_endpoint("tcp://[::1]:1") == "::1"
    assert host_of_endpoint("tcp://eth0;10.0.0.1:1") == "eth0;10.0.0.1"
    assert host_of_endpoint("ipc:///x") is None
    assert not is_loopback_host("no-such-host.invalid")
