"""Fast UUIDv7 ids: valid, time-ordered by millisecond, never repeated by a forked child."""

from __future__ import annotations

import os
import time

from secbus_sdk.event import ID_RE
from secbus_sdk.ids import fast_event_id


def test_ids_are_valid_uuid7_carrying_the_millisecond():
    ts = time.time_ns()
    value = fast_event_id(ts)
    assert ID_RE.fullmatch(value)
    assert int(value.replace("-", "")[:12], 16) == ts // 1_000_000


def test_ids_sort_by_time_and_do_not_repeat():
    ts = time.time_ns()
    ids = [fast_event_id(ts + i * 1_000_000 // 100) for i in range(10000)]
    assert len(set(ids)) == len(ids)
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)


def test_a_forked_child_draws_a_new_random_part():
    ts = time.time_ns()
    parent = fast_event_id(ts)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.write(w, fast_event_id(ts).encode())
        os._exit(0)
    os.close(w)
    child = os.read(r, 100).decode()
    os.close(r)
    os.waitpid(pid, 0)
    assert ID_RE.fullmatch(child)
    assert child[14:28] != parent[14:28], "the child must not share the parent's random bits"


def test_the_counter_part_is_the_ids_sequence_number_across_blocks():
    """The last 8 hex digits count up by one per id, across the 256-id blocks the tail is cached in."""
    ts = time.time_ns()
    counters = [int(fast_event_id(ts)[-8:], 16) for _ in range(1000)]
    assert counters == list(range(counters[0], counters[0] + 1000))
