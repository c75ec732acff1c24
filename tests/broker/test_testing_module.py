"""``secbus.testing``, what handler authors test with: a real broker that is ready when returned
and gone afterwards (the ``secbus_broker`` fixture is exercised by docs/handlers.md's tutorial
test, tests/handlers/test_docs_tutorial.py)."""

from __future__ import annotations

from secbus.testing import running_broker, wait_until
from secbus_sdk import Client


def test_running_broker_is_ready_when_entered_and_stopped_when_left(tmp_path):
    with running_broker(tmp_path, handlers=["audit"], config={"handlers": {"audit": {"checkpoint_every": 5}}}) as broker:
        assert broker.healthz()["handlers"]["audit"]["state"] == "running"  # every startup ran
        client = Client(endpoint=broker.ingest, service="test", spool_dir=str(tmp_path / "spool"), stats_interval=0)
        client.emit("authn.login", "failure", actor={"user": "alice"})
        assert client.flush(5)
        client.close(5)
        [event] = wait_until(broker.events, message="the event in the log")
        assert event["actor"] == {"user": "alice"} and event["seq"] == 1
        assert broker.dir.parent == tmp_path and (broker.data_dir / "audit").is_dir()
    assert broker.proc.returncode == 0  # SIGTERM, drained, clean exit
    assert not (broker.data_dir / "broker.json").exists()
