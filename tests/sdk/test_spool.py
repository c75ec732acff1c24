"""The disk spool: bounded, ordered, persistent, torn tails skipped, one lane per process."""

from __future__ import annotations

import os

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from secbus_sdk.spool import HEADER_BYTES, Spool, SpoolError, encode_record


def payload(*values) -> bytes:
    return msgpack.packb(list(values))


def drain(spool: Spool, ack: bool = True) -> list:
    out = []
    while (rec := spool.next_record()) is not None:
        out.append(msgpack.unpackb(rec.payload))
        if ack:
            spool.ack(rec.token)
    return out


def segment_files(root) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files if f.endswith(".seg"))


def test_records_come_back_in_order_and_survive_a_new_spool_on_the_same_dir(tmp_path):
    spool = Spool(str(tmp_path), 1 << 20, segment_bytes=100)
    for i in range(20):
        assert spool.append(payload(i, "x" * 10), 2)
    assert spool.events == 40
    spool.close()

    again = Spool(str(tmp_path), 1 << 20, segment_bytes=100)
    again.load()
    assert again.events == 40
    assert drain(again) == [[i, "x" * 10] for i in range(20)]
    assert again.empty and again.bytes == 0
    assert segment_files(tmp_path) == [], "acknowledged segments are deleted"


def test_nothing_is_deleted_before_its_ack(tmp_path):
    spool = Spool(str(tmp_path), 1 << 20, segment_bytes=64)
    for i in range(6):
        spool.append(payload(i), 1)
    assert len(drain(spool, ack=False)) == 6
    spool.close()
    again = Spool(str(tmp_path), 1 << 20)
    assert drain(again) == [[i] for i in range(6)], "read but unacknowledged records are replayed"


def test_rewind_hands_out_only_unacknowledged_records(tmp_path):
    spool = Spool(str(tmp_path), 1 << 20, segment_bytes=1 << 20)
    for i in range(5):
        spool.append(payload(i), 1)
    records = [spool.next_record() for _ in range(5)]
    spool.ack(records[1].token)
    spool.ack(records[3].token)
    spool.rewind()
    assert drain(spool) == [[0], [2], [4]]
    assert spool.empty


def test_append_is_refused_at_the_byte_bound_and_accepted_after_acks_free_space(tmp_path):
    data = payload("y" * 1000)
    record = HEADER_BYTES + len(data)
    spool = Spool(str(tmp_path), 10 * record, segment_bytes=2 * record)
    accepted = sum(spool.append(data, 1) for _ in range(15))
    assert accepted == 10
    assert spool.bytes == 10 * record <= spool.max_bytes
    assert sum(os.path.getsize(p) for p in segment_files(tmp_path)) == spool.bytes
    for _ in range(2):
        spool.ack(spool.next_record().token)
    assert spool.append(data, 1), "a segment whose records are all ACKed gives its space back"


def test_torn_tail_is_cut_counted_and_never_replayed(tmp_path):
    spool = Spool(str(tmp_path), 1 << 20)
    for i in range(3):
        spool.append(payload(i), 1)
    spool.close()
    [seg] = segment_files(tmp_path)
    full = encode_record(payload("torn"), 1)
    with open(seg, "ab") as f:  # a crash in the middle of a write
        f.write(full[: len(full) // 2])
    good_size = os.path.getsize(seg) - len(full) // 2

    again = Spool(str(tmp_path), 1 << 20)
    assert drain(again) == [[0], [1], [2]]
    assert again.torn == 1
    assert not os.path.exists(seg) or os.path.getsize(seg) == good_size


def test_corrupt_record_ends_its_segment_but_not_the_next_one(tmp_path):
    spool = Spool(str(tmp_path), 1 << 20, segment_bytes=10)
    for i in range(3):
        spool.append(payload(i), 1)  # one record per segment
    spool.close()
    first, second, third = segment_files(tmp_path)
    with open(second, "r+b") as f:  # flip a payload byte: the CRC no longer matches
        f.seek(HEADER_BYTES)
        byte = f.read(1)
        f.seek(HEADER_BYTES)
        f.write(bytes([byte[0] ^ 0xFF]))
    again = Spool(str(tmp_path), 1 << 20)
    assert drain(again) == [[0], [2]]
    assert again.torn == 1


def test_garbage_header_with_a_huge_length_is_skipped(tmp_path):
    spool = Spool(str(tmp_path), 1 << 20)
    spool.append(payload("ok"), 1)
    spool.close()
    [seg] = segment_files(tmp_path)
    with open(seg, "ab") as f:
        f.write(b"\xff" * 40)
    again = Spool(str(tmp_path), 1 << 20)
    assert drain(again) == [["ok"]]
    assert again.torn == 1


def test_two_live_spools_on_one_dir_get_separate_lanes(tmp_path):
    a = Spool(str(tmp_path), 1 << 20)
    b = Spool(str(tmp_path), 1 << 20)
    assert a.lane != b.lane
    a.append(payload("a"), 1)
    b.append(payload("b"), 1)
    assert drain(a) == [["a"]] and drain(b) == [["b"]]
    a.close()
    b.close()


def test_a_lane_left_by_a_dead_process_is_adopted_by_the_next_spool(tmp_path):
    a = Spool(str(tmp_path), 1 << 20)
    b = Spool(str(tmp_path), 1 << 20)  # lane 1
    b.append(payload("left behind"), 1)
    b.close()  # its process is gone: lane 1 is unlocked
    a.append(payload("mine"), 1)
    a.close()
    c = Spool(str(tmp_path), 1 << 20)  # takes lane 0 and adopts lane 1
    assert c.lane == 0
    assert sorted(map(tuple, drain(c))) == [("left behind",), ("mine",)]
    assert segment_files(tmp_path) == []


def test_unusable_spool_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    with pytest.raises(SpoolError, match="spool_dir"):
        Spool(str(blocker / "spool"), 1 << 20)


def test_a_spool_dir_open_to_other_users_is_named_in_a_warning_and_a_new_one_is_owner_only(tmp_path, caplog):
    fresh = tmp_path / "fresh"
    Spool(str(fresh), 1 << 20).close()
    assert fresh.stat().st_mode & 0o777 == 0o700 and not caplog.records
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    with caplog.at_level("WARNING", logger="secbus_sdk"):
        Spool(str(shared), 1 << 20).close()
    assert f"{shared} is open to other users (mode 755)" in caplog.text and "chmod 700" in caplog.text


def test_records_appended_after_the_reader_caught_up_are_still_read(tmp_path):
    spool = Spool(str(tmp_path), 1 << 20, segment_bytes=1 << 20)
    spool.append(payload(0), 1)
    first = spool.next_record()
    assert spool.next_record() is None  # caught up with the writer
    spool.append(payload(1), 1)
    spool.append(payload(2), 1)
    spool.ack(first.token)
    assert drain(spool) == [[1], [2]]
    assert spool.empty


def test_reader_follows_the_writer_across_segment_rollover(tmp_path):
    spool = Spool(str(tmp_path), 1 << 20, segment_bytes=40)
    got = []
    for i in range(30):
        spool.append(payload(i, "pad" * 5), 1)
        if i % 3 == 0:
            got += drain(spool)
    got += drain(spool)
    assert got == [[i, "pad" * 5] for i in range(30)]
    assert spool.empty and segment_files(tmp_path) == []


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 300)),
        st.tuples(st.just("read"), st.just(0)),
        st.tuples(st.just("ack"), st.integers(0, 10)),
        st.tuples(st.just("rewind"), st.just(0)),
        st.tuples(st.just("reopen"), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_spool_model_every_unacknowledged_record_is_replayed_in_order_and_acked_ones_never(tmp_path_factory, ops):
    """Random appends, reads, ACKs, rewinds and restarts: what is not ACKed always comes back, in
    append order; what was ACKed never comes back, not even after a restart (ACK sidecars)."""
    root = str(tmp_path_factory.mktemp("spool"))
    spool = Spool(root, 64 * 1024, segment_bytes=512)
    next_value = 0
    acked: set[int] = set()
    appended: list[int] = []
    handed: list[tuple[int, object]] = []  # read, not yet acked, since the last rewind/reopen
    for op, arg in ops:
        if op == "append":
            if spool.append(payload(next_value, "x" * arg), 1):
                appended.append(next_value)
            next_value += 1
        elif op == "read":
            rec = spool.next_record()
            if rec is not None:
                value = msgpack.unpackb(rec.payload)[0]
                assert value not in acked
                handed.append((value, rec.token))
        elif op == "ack" and handed:
            value, token = handed.pop(arg % len(handed))
            spool.ack(token)
            acked.add(value)
        elif op == "rewind":
            spool.rewind()
            handed.clear()
        elif op == "reopen":
            spool.close()
            spool = Spool(root, 64 * 1024, segment_bytes=512)
            handed.clear()
    spool.rewind()
    rest = [v[0] for v in drain(spool, ack=False)]
    assert rest == [v for v in appended if v not in acked]
    assert spool.events == len(rest)
    spool.close()


def test_segments_removed_under_a_live_spool_are_counted_and_the_spool_keeps_working(tmp_path):
    import shutil

    spool = Spool(str(tmp_path), 1 << 20, segment_bytes=64)
    for i in range(3):
        spool.append(payload(i, "x" * 50), 1)
    shutil.rmtree(spool.lane_dir)  # an over-eager cache cleaner
    assert spool.next_record() is None
    assert spool.torn >= 1 and spool.empty and spool.bytes == 0
    assert spool.append(payload("after"), 1), "the lane is recreated for new records"
    assert drain(spool) == [["after"]]
    spool.close()


def test_acks_survive_a_restart_so_acknowledged_records_are_not_sent_again(tmp_path):
    spool = Spool(str(tmp_path), 1 << 20, segment_bytes=1 << 20)
    for i in range(6):
        spool.append(payload(i), 2)
    records = [spool.next_record() for _ in range(6)]
    for rec in (records[0], records[2], records[3]):
        spool.ack(rec.token)
    spool.close()  # a restart in the middle of a replay

    again = Spool(str(tmp_path), 1 << 20)
    again.load()
    assert again.events == 6, "3 records of 2 events are still unacknowledged"
    assert drain(again) == [[1], [4], [5]]
    assert segment_files(tmp_path) == []
    assert not [n for n in os.listdir(again.lane_dir) if n.endswith(".ack")], "sidecars go with their segment"


def test_a_torn_ack_sidecar_entry_is_ignored_and_a_stale_sidecar_never_hides_new_records(tmp_path):
    spool = Spool(str(tmp_path), 1 << 20, segment_bytes=1 << 20)
    for i in range(3):
        spool.append(payload(i), 1)
    first = spool.next_record()
    spool.ack(first.token)
    lane = spool.lane_dir
    spool.close()
    [seg] = segment_files(tmp_path)
    with open(seg[:-4] + ".ack", "ab") as f:
        f.write(b"\x01\x02\x03")  # a torn entry
    again = Spool(str(tmp_path), 1 << 20)
    assert drain(again) == [[1], [2]]
    again.close()
    # a sidecar left without its segment (a failed unlink) must not apply to a new segment 0
    with open(os.path.join(lane, "00000000000000000000.ack"), "wb") as f:
        f.write((0).to_bytes(8, "little"))
    third = Spool(str(tmp_path), 1 << 20)
    third.append(payload("new"), 1)
    third.close()
    fourth = Spool(str(tmp_path), 1 << 20)
    assert drain(fourth) == [["new"]]
