"""The tiered queue: which pending task is tried next.

Critical tier first, then Flex. Inside a tier, the group furthest below its share (usage /
reservation, dominant resource) goes next, re-ranked after every placement so groups take
turns as they catch up; inside a group, FIFO by enqueue time. This is how a burst from one
group cannot starve another group that is entitled to capacity.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Mapping
from operator import attrgetter

import numpy as np

from titus.master.scheduler.capacity import CapacityLedger
from titus.master.scheduler.model import CapacityGroup, TaskRequest

_CRITICAL_RANK = 0
_FLEX_RANK = 1


class TieredQueue:
    """Pops tasks in tier / share / FIFO order; `placed` feeds placements back into shares.

    The group of the last popped task is re-ranked on the next `pop`, after the caller had a
    chance to report the placement, so the order always reflects what was placed.
    """

    def __init__(self, tasks: Iterable[TaskRequest], ledger: CapacityLedger) -> None:
        self.ledger = ledger
        buckets: dict[str, list[TaskRequest]] = {}
        for task in tasks:
            buckets.setdefault(ledger.resolve(task.capacity_group).name, []).append(task)
        self._buckets: dict[str, deque[TaskRequest]] = {
            name: deque(sorted(items, key=lambda t: (t.enqueued_at, t.task_id)))
            for name, items in buckets.items()
        }
        self._heap: list[tuple[int, float, str]] = [self._rank(name) for name in self._buckets]
        heapq.heapify(self._heap)
        self._current: str | None = None
        self._size = sum(len(b) for b in self._buckets.values())

    def __len__(self) -> int:
        return self._size

    def _rank(self, name: str) -> tuple[int, float, str]:
        tier = _CRITICAL_RANK if name in self.ledger.critical else _FLEX_RANK
        return (tier, self.ledger.share(name), name)

    def pop(self) -> tuple[TaskRequest, CapacityGroup] | None:
        """The next task to try and its capacity group, or None when empty."""
        run = self.pop_run(1)
        return None if run is None else (run[1][0], run[0])

    def pop_run(self, limit: int) -> tuple[CapacityGroup, list[TaskRequest]] | None:
        """The group next in turn and up to `limit` tasks from its head that belong to one job
        and ask for the same placement (resources, type, constraints), or None when empty.

        Groups are re-ranked between runs, not between the tasks of a run: fairness among
        groups at the granularity of a job's run, which lets the run share one evaluation.
        """
        if self._current is not None:
            if self._buckets[self._current]:
                heapq.heappush(self._heap, self._rank(self._current))
            self._current = None
        if not self._heap:
            return None
        _, _, name = heapq.heappop(self._heap)
        bucket = self._buckets[name]
        first = bucket.popleft()
        run = [first]
        request = _request(first)
        while bucket and len(run) < limit and _request(bucket[0]) == request:
            run.append(bucket.popleft())
        self._current = name
        self._size -= len(run)
        return self.ledger.groups[name], run

    def remaining(self) -> list[TaskRequest]:
        """Tasks not popped yet, in the order they would come if nothing else were placed."""
        rest: list[TaskRequest] = []
        order = sorted(
            [*self._heap, *([self._rank(self._current)] if self._current else [])],
        )
        for _, _, name in order:
            rest.extend(self._buckets[name])
        return rest


def queue_order(
    tasks: Iterable[TaskRequest],
    groups: Mapping[str, CapacityGroup] | None = None,
    usage: Mapping[str, Mapping[str, float]] | None = None,
) -> list[TaskRequest]:
    """The order tasks would be tried if each were placed: the tiered queue on its own."""
    ledger = CapacityLedger(groups, usage)
    queue = TieredQueue(tasks, ledger)
    out: list[TaskRequest] = []
    while (item := queue.pop()) is not None:
        task, group = item
        ledger.charge(group.name, np.array(task.demand(), dtype=np.float64))
        out.append(task)
    return out


#: What makes two tasks of one job the same request (read in one call per task).
_request = attrgetter(
    "job_id",
    "cpu",
    "memory_mb",
    "disk_mb",
    "network_mbps",
    "gpu",
    "ip_slots",
    "security_groups",
    "job_type",
    "hard_constraints",
    "soft_constraints",
)
