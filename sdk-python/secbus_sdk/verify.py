"""``verify()`` and ``verified()``: time a check and record its outcome as one event.

The promise: they never swallow, replace or alter what the wrapped code
raises or returns.  The outcome is

* ``success`` when the block ends normally (or the function returns a truthy
  value, or any value unless ``falsy_is_failure=True``);
* ``failure`` after ``v.fail("reason")``, on a falsy return with
  ``falsy_is_failure=True`` (reason ``falsy_result``), or when the exception is
  an instance of a class in ``fail_on`` (reason: its class name), for libraries
  that report a bad signature by raising (``cryptography``'s ``InvalidSignature``);
* ``error`` for any other exception, with its class name as ``reason``.

``duration_us`` is measured with ``time.perf_counter_ns``.  The event fields
given to ``verify()`` are validated when it is called, before the wrapped code
runs, so a bad field raises ``ValueError`` up front and never masks the
wrapped code's own exception later.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client

log = logging.getLogger("secbus_sdk")

_ALLOWED = ("actor", "resource", "attrs", "severity", "traceparent")


class Verification:
    """What ``with client.verify(...) as v`` gives: call ``v.fail(reason)`` to record a failure."""

    __slots__ = ("_client", "_type", "_fail_on", "_fields", "_start", "outcome", "reason", "event_id")

    def __init__(self, client: "Client", event_type: str, fail_on: tuple, fields: dict, validate: bool = True):
        if validate:
            _validate(client, event_type, fail_on, fields)
        self._client = client
        self._type = event_type
        self._fail_on = fail_on
        self._fields = fields
        self._start = 0
        self.outcome: str | None = None
        self.reason: str | None = None
        self.event_id: str | None = None

    def fail(self, reason: str = "failed") -> None:
        """Record the check as failed with a short reason code (``bad_signature``, ``expired``)."""
        if reason.__class__ is not str or not reason:
            raise ValueError(f"reason: expected a short non-empty string code, got {reason!r:.60}")
        self.outcome = "failure"
        self.reason = reason

    def __enter__(self) -> "Verification":
        self._start = time.perf_counter_ns()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._finish(exc)
        return False  # never swallow

    async def __aenter__(self) -> "Verification":
        return self.__enter__()

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        self._finish(exc)
        return False

    def _finish(self, exc: BaseException | None) -> None:
        duration_us = (time.perf_counter_ns() - self._start) // 1000
        outcome, reason = self.outcome or "success", self.reason
        if exc is not None:
            reason = type(exc).__name__
            outcome = "failure" if isinstance(exc, self._fail_on) else "error"
        try:
            self.event_id = self._client.emit(
                self._type, outcome, reason=reason, duration_us=duration_us, **self._fields
            )
        except Exception:  # pragma: no cover - fields were validated up front
            log.exception("secbus: could not record verification %s", self._type)


def _validate(client: "Client", event_type: str, fail_on: tuple, fields: dict) -> None:
    for name in fields:
        if name not in _ALLOWED:
            raise ValueError(f"{name}: not an event field verify() accepts; use one of {', '.join(_ALLOWED)}")
    if fail_on.__class__ is not tuple or not all(isinstance(c, type) and issubclass(c, BaseException) for c in fail_on):
        raise ValueError(f"fail_on: expected a tuple of exception classes, got {fail_on!r}")
    # A bad field is the caller's bug, reported before their code runs rather
    # than on the way out of it.  A type seen before skips the full check.
    try:
        known = event_type in client._types
    except TypeError:
        known = False
    if not known or fields:
        client._check_fields_only(event_type, fields)


def verified_decorator(client: "Client", event_type: str, falsy_is_failure: bool, fail_on: tuple, fields: dict) -> Callable:
    _validate(client, event_type, fail_on, fields)  # once, at decoration time

    def decorate(fn: Callable) -> Callable:
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                v = Verification(client, event_type, fail_on, fields, validate=False)
                with v:
                    result = await fn(*args, **kwargs)
                    if falsy_is_failure and not result:
                        v.fail("falsy_result")
                return result

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            v = Verification(client, event_type, fail_on, fields, validate=False)
            with v:
                result = fn(*args, **kwargs)
                if falsy_is_failure and not result:
                    v.fail("falsy_result")
            return result

        return wrapper

    return decorate
