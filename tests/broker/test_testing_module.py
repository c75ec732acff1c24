"""``secbus.testing``, what handler authors test with: a real broker that is ready when returned
and gone afterwards (the ``secbus_broker`` fixture is exercised by docs/handlers.md's tutorial
test, tests/handlers/test_docs_tutorial.py)."""

from __future__ import annotations

from secbus.testing import running_broker, wait_until


def test_running_broker_is_ready_when_entered_and_stopped_when_left(tmp_path):
    with running_broker(tmp_path, handlers=["audit"], config={"handlers": {"audit": {"checkpoint_every": 5}}}) as broker:
        assert broker.healthz()["handlers"]["audit"]["state"] == "running"  # every startup ran
        client = broker.sdk_client("checkout")
        client.emit("authn.login", "failure", actor={"user": "alice"})
        assert client.flush(5)
        assert client.spool_dir == str(broker.dir / "spool" / "checkout")  # not the user's cache
        [event] = wait_until(broker.events, message="the event in the log")
        assert event["actor"] == {"user": "alice"} and event["seq"] == 1
        assert broker.dir.parent == tmp_path and (broker.data_dir / "audit").is_dir()
    assert broker.proc.returncode == 0  # SIGTERM, drained, clean exit
    assert client._closed  # the client was flushed and closed before the broker stopped
    assert not (broker.data_dir / "broker.json").exists()
