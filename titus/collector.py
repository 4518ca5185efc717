"""Full garbage collections that do not stop a server for the state it keeps.

The API's view holds every active job and task as long-lived objects, some forty per
job, and the leader's view every active task's facts. CPython collects its oldest
generation each time a quarter more objects have survived into it, and such a collection
walks all of them with every request held: with 18,000 jobs in the view one took 0.3 s,
and while jobs kept coming they came back every few seconds, longer each time (a
create's p99 at one client was 200 ms for a p50 of 1 ms). None of it was garbage.

So what survives a collection of the middle generation is frozen (`gc.freeze`: kept out
of every later collection's walk): a full collection then walks only what is new since
the last freeze, and long-lived objects are walked twice, young, instead of again and
again, old. The cost is that an object alive at a freeze which later becomes part of an
unreachable cycle would never be collected. To bound that, once the frozen heap has
doubled since the last collection that walked everything, it is unfrozen and the next
full collection walks it all (once per doubling of the heap, where CPython's own rule
walks it per quarter); what leaked is collected then. Objects freed by reference
counting (most of them: a finished job leaving the view) leave the frozen heap as they
go, so a heap that only churns is never walked whole again.
"""

from __future__ import annotations

import bisect
import gc
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

#: The frozen heap may grow by at least this many objects before it is walked again,
#: however small it was (a process starting up freezes little).
MIN_GROWTH = 200_000


#: Upper bounds (seconds) of the pause histogram's buckets.
PAUSE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _FreezeSurvivors:
    def __init__(self) -> None:
        # what the metrics report, kept in plain numbers: the callback runs inside any
        # allocation of any thread, where taking a metric's lock could deadlock
        self.started = 0.0
        self.pauses = [[0] * (len(PAUSE_BUCKETS) + 1) for _ in range(3)]  # per generation
        self.paused = [0.0] * 3  # seconds, per generation
        self.full_walks = 0
        self.walked = 0  # the frozen heap after the last collection that walked it all
        #: The frozen heap's size as last counted plus what was frozen since: counting it
        #: is a walk of its own (`gc.get_freeze_count`), done only when this says it may
        #: have doubled (and objects freed meanwhile are not subtracted).
        self.estimate = 0
        #: The next full collection walks everything (the first one does).
        self.sweeping = True

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        generation = info["generation"]
        if phase == "start":
            self.started = time.perf_counter()
            return
        self._count_pause(generation, time.perf_counter() - self.started)
        if generation == 0:
            return
        if self.sweeping:
            if generation < 2:
                return  # the released heap waits for the full collection that walks it
            gc.freeze()
            self.sweeping = False
            self.walked = self.estimate = gc.get_freeze_count()
            self.full_walks += 1
            return
        # the oldest generation holds exactly what this collection kept: all older
        # survivors were frozen before it
        self.estimate += len(gc.get_objects(generation=2))
        gc.freeze()
        if self.estimate > self._limit():
            self.estimate = gc.get_freeze_count()
            if self.estimate > self._limit():
                gc.unfreeze()
                self.sweeping = True

    def _limit(self) -> int:
        return max(2 * self.walked, self.walked + MIN_GROWTH)

    def _count_pause(self, generation: int, seconds: float) -> None:
        # the first bucket whose bound is at least `seconds` (the last: +Inf)
        self.pauses[generation][bisect.bisect_left(PAUSE_BUCKETS, seconds)] += 1
        self.paused[generation] += seconds


class _Metrics:
    """The policy's numbers for Prometheus, read at scrape time: collection pauses by
    generation, full walks of the frozen heap, the frozen heap as last counted."""

    def describe(self) -> Iterator[Metric]:
        return iter(())  # collected only once installed; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        policy = _installed
        if policy is None:
            return
        pauses = HistogramMetricFamily(
            "titus_gc_pause_seconds",
            "Pauses of the cyclic garbage collector, every thread held, by generation",
            labels=["generation"],
        )
        for generation, counts in enumerate(policy.pauses):
            cumulative, buckets = 0, []
            for bound, count in zip((*PAUSE_BUCKETS, float("inf")), counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
            pauses.add_metric([str(generation)], buckets, policy.paused[generation])
        yield pauses
        yield CounterMetricFamily(
            "titus_gc_full_walks",
            "Full collections that walked the whole heap, frozen part included (once per "
            "doubling of the frozen heap)",
            value=policy.full_walks,
        )
        yield GaugeMetricFamily(
            "titus_gc_frozen_objects",
            "Objects kept out of the collector's walks, as last counted (plus those frozen since)",
            value=policy.estimate,
        )


_installed: _FreezeSurvivors | None = None
_lock = threading.Lock()


def install() -> None:
    """Have this process freeze what survives its collections (once per process; the
    API and master commands do)."""
    global _installed
    with _lock:
        if _installed is None:
            _installed = _FreezeSurvivors()
            gc.callbacks.append(_installed)
            REGISTRY.register(_Metrics())


def freeze() -> None:
    """Freeze everything now, as just walked: for state a server has just loaded and
    knows to be live (a leader's view), which the doubling rule would otherwise walk at
    once."""
    with _lock:
        gc.freeze()
        if _installed is not None:
            _installed.walked = _installed.estimate = gc.get_freeze_count()
            _installed.sweeping = False


def release() -> None:
    """Hand everything frozen back to the collector: the next full collection walks it
    (for state that may be garbage now, as a leadership's when it ends)."""
    with _lock:
        gc.unfreeze()
        if _installed is not None:
            _installed.sweeping = True
