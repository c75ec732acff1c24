"""The broker's collector settings (secbus.gcpolicy): fewer collections, garbage still reclaimed.

Each check runs in a fresh interpreter so the test process keeps CPython's defaults.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_tune_freezes_startup_objects_and_spaces_collections_out():
    out = _run(
        """
        import gc
        from secbus import gcpolicy
        gcpolicy.tune()
        print(gc.get_threshold(), gc.get_freeze_count() > 0)
        """
    )
    assert out == "(100000, 20, 100) True"


def test_cyclic_garbage_is_still_reclaimed_after_tuning():
    # a cycle (what an exception's traceback makes) must not outlive enough allocations
    out = _run(
        """
        import gc, weakref
        from secbus import gcpolicy
        gcpolicy.tune()
        class Node:
            pass
        freed = []
        a, b = Node(), Node()
        a.other, b.other = b, a
        weakref.finalize(a, freed.append, True)
        del a, b
        keep = []
        for i in range(gcpolicy.GEN0_THRESHOLD * 2):
            keep.append([i])  # containers that stay alive count towards a collection
            if freed:
                break
        print(bool(freed), len(keep) <= gcpolicy.GEN0_THRESHOLD + 1)
        """
    )
    assert out == "True True"


def test_a_transient_batch_does_not_trigger_a_young_collection():
    # the reason for the setting: a batch's containers die by refcount before a collection looks
    out = _run(
        """
        import gc
        from secbus import gcpolicy
        gcpolicy.tune()
        before = gc.get_stats()[0]["collections"]
        for _ in range(200):
            batch = [{"actor": {"user": "u"}, "attrs": {"k": i}} for i in range(1000)]
            del batch
        print(gc.get_stats()[0]["collections"] - before)
        """
    )
    assert out == "0"
