"""verify()/verified(): bad arguments fail up front; the wrapped code's results and exceptions
pass through untouched, whatever the state of the bus."""

from __future__ import annotations

import asyncio

import pytest

from secbus_sdk import Client

from .helpers import dead_endpoint


@pytest.fixture
def client(tmp_path):
    c = Client(dead_endpoint(), service="unit", spool_dir=str(tmp_path / "spool"), ack_timeout=0.2)
    yield c
    c.close(0)


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda c: c.verify("NotDotted"), "type"),
        (lambda c: c.verify("authn.login", colour="red"), "colour"),
        (lambda c: c.verify("authn.login", actor={"user": 5}), "actor.user"),
        (lambda c: c.verify("authn.login", severity="loud"), "severity"),
        (lambda c: c.verify("authn.login", fail_on=ValueError), "fail_on"),
        (lambda c: c.verify("authn.login", fail_on=(int,)), "fail_on"),
        (lambda c: c.verified("Bad Type"), "type"),
        (lambda c: c.verified("authn.login", attrs={"x": {}}), "attrs.x"),
    ],
)
def test_bad_verify_arguments_raise_before_the_wrapped_code_runs(client, call, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        call(client)


def test_fail_with_a_bad_reason_raises_value_error(client):
    with pytest.raises(ValueError, match="^reason:"):
        with client.verify("authn.login") as v:
            v.fail(123)


def test_exceptions_pass_through_as_the_same_object_even_with_the_bus_down_or_closed(client):
    boom = RuntimeError("original")
    with pytest.raises(RuntimeError) as info:
        with client.verify("authn.login"):
            raise boom
    assert info.value is boom
    client.close(0)  # emit now counts drops instead of queueing: still nothing may leak out

    @client.verified("authn.login")
    def f():
        raise boom

    with pytest.raises(RuntimeError) as info:
        f()
    assert info.value is boom


def test_return_values_and_metadata_pass_through(client):
    marker = object()

    @client.verified("authn.login", falsy_is_failure=True)
    def check(x):
        """Doc."""
        return marker if x else None

    @client.verified("authn.login")
    async def acheck(x):
        return x

    assert check(True) is marker and check(False) is None
    assert check.__name__ == "check" and check.__doc__ == "Doc."
    assert asyncio.run(acheck(marker)) is marker
    assert asyncio.iscoroutinefunction(acheck)


def test_verify_records_exactly_one_event_per_block(client):
    before = client.stats()["queued"] + client.stats()["spooled"]
    with client.verify("authn.login") as v:
        v.fail("first")
        v.fail("second")
    assert v.outcome == "failure" and v.reason == "second" and v.event_id
    assert client.stats()["queued"] + client.stats()["spooled"] == before + 1
