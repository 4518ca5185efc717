"""The servers' garbage collection policy (titus/collector.py): a full collection does not
walk again what survived the last one, and what that policy could leak (a cycle that
became garbage after it was frozen) is still collected once the heap has doubled.

Each case runs in a fresh interpreter: the policy is process-wide."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support.platform import ROOT


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_what_survived_a_collection_is_not_walked_by_the_next_full_one() -> None:
    out = _run(
        """
        import gc
        from titus import collector
        collector.install()
        view = [{"job": [i, str(i)]} for i in range(20_000)]  # long-lived, tracked
        gc.collect()
        more = [{"task": [i]} for i in range(10_000)]
        gc.collect(1)  # a collection of the younger generations: its survivors too
        walked = {id(o) for o in gc.get_objects(generation=2)}
        print(sum(id(entry) in walked for entry in view + more))
        print(gc.get_freeze_count() >= 60_000)
        """
    )
    assert out.split() == ["0", "True"]


def test_a_cycle_that_became_garbage_after_its_freeze_is_collected_once_the_heap_doubled() -> None:
    out = _run(
        """
        import gc, weakref
        from titus import collector
        class Node:
            pass
        node = Node()
        node.me = node  # a cycle, alive at the next full collection
        gone = weakref.ref(node)
        collector.install()
        gc.collect()
        del node
        gc.collect()
        print("kept" if gone() is not None else "collected")  # frozen: out of sight
        grown = [[i] for i in range(2 * collector.MIN_GROWTH)]
        gc.collect()  # the frozen heap doubled: released to the next full collection
        gc.collect()
        print("kept" if gone() is not None else "collected", gc.get_freeze_count() > 0)
        """
    )
    assert out.split() == ["kept", "collected", "True"]


def test_a_leaders_loaded_view_is_not_walked_at_once_and_its_end_releases_it() -> None:
    """A leader freezes its freshly loaded view (`collector.freeze`): however much bigger
    than the heap before it, the next collections do not walk it; when the leadership
    ends (`collector.release`) a cycle in it that is garbage by then is collected."""
    out = _run(
        """
        import gc, weakref
        from titus import collector
        collector.install()
        gc.collect()
        class Node:
            pass
        node = Node()
        node.me = node
        gone = weakref.ref(node)
        loaded = [[i] for i in range(3 * collector.MIN_GROWTH)]
        collector.freeze()
        gc.collect()
        walked = {id(o) for o in gc.get_objects(generation=2)}
        print(sum(id(entry) in walked for entry in loaded))
        del node, loaded
        collector.release()
        gc.collect()
        print("kept" if gone() is not None else "collected")
        """
    )
    assert out.split() == ["0", "collected"]


def test_an_operator_sees_the_pauses_the_walks_and_the_frozen_heap_in_metrics() -> None:
    out = _run(
        """
        import gc
        from prometheus_client import REGISTRY, generate_latest
        from titus import collector
        collector.install()
        gc.collect()
        for line in generate_latest(REGISTRY).decode().splitlines():
            if line.startswith(("titus_gc_pause_seconds_count", "titus_gc_full_walks_total",
                                "titus_gc_frozen_objects")):
                print(line.replace(" ", "="))
        """
    )
    series = dict(line.rsplit("=", 1) for line in out.split())
    assert float(series['titus_gc_pause_seconds_count{generation="2"}']) >= 1
    assert float(series["titus_gc_full_walks_total"]) == 1  # the first walks everything
    assert float(series["titus_gc_frozen_objects"]) > 0
