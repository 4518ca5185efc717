"""Admission: whether the platform takes more work now, before anything is written.

Bounds on active jobs and tasks protect the store and the leader; the bound on tasks
waiting per capacity group keeps one team's flood from queueing ahead of everyone. A
refusal is a 429 with Retry-After: the caller may come back once work drains.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping

from titus.api.errors import ApiError
from titus.model.names import DEFAULT_CAPACITY_GROUP
from titus.settings import Settings
from titus.store.base import PENDING_BY_GROUP_META
from titus.store.roles import Leadership


class Limits:
    """Admission bounds and where the current numbers come from (the API's view)."""

    def __init__(
        self,
        max_active_jobs: int,
        max_active_tasks: int,
        active_jobs: Callable[[], int] | None = None,
        task_demand: Callable[[], int] | None = None,
        *,
        max_pending_per_group: int,
        pending_by_group: Callable[[], Mapping[str, int]] | None = None,
    ):
        self.max_active_jobs = max_active_jobs
        self.max_active_tasks = max_active_tasks
        self.active_jobs = active_jobs
        self.task_demand = task_demand
        self.max_pending_per_group = max_pending_per_group
        self.pending_by_group = pending_by_group

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        store: Leadership,
        *,
        active_jobs: Callable[[], int],
        task_demand: Callable[[], int],
    ) -> Limits:
        """The configured bounds; pending counts per group read from the leader's record
        in `store` (the leader may be another process)."""
        return cls(
            settings.max_active_jobs,
            settings.max_active_tasks,
            active_jobs=active_jobs,
            task_demand=task_demand,
            max_pending_per_group=settings.max_pending_per_group,
            pending_by_group=PendingCounts(store),
        )

    def counts_cached(self) -> bool:
        """Whether `admit` can answer now without reading the store (the pending counts
        per group were read less than their time to live ago)."""
        pending = self.pending_by_group
        return not isinstance(pending, PendingCounts) or pending.fresh()

    def admit(self, new_jobs: int, new_tasks: int, group: str = DEFAULT_CAPACITY_GROUP) -> None:
        jobs = self.active_jobs
        if new_jobs and jobs is not None and jobs() + new_jobs > self.max_active_jobs:
            raise ApiError(
                429,
                f"limit maxActiveJobs ({self.max_active_jobs}) reached: "
                "no new job until some finish",
                headers={"Retry-After": "30"},
            )
        demand = self.task_demand
        if new_tasks > 0 and demand is not None and demand() + new_tasks > self.max_active_tasks:
            raise ApiError(
                429,
                f"limit maxActiveTasks ({self.max_active_tasks}) reached: "
                f"{new_tasks} more tasks would exceed it",
                headers={"Retry-After": "30"},
            )
        pending = self.pending_by_group
        if new_tasks > 0 and pending is not None:
            group = group or DEFAULT_CAPACITY_GROUP
            queued = pending().get(group, 0)
            if queued >= self.max_pending_per_group:
                raise ApiError(
                    429,
                    f"capacity group {group} is full: {queued} tasks wait for "
                    f"placement, its limit is {self.max_pending_per_group}",
                    headers={"Retry-After": "30"},
                )


class PendingCounts:
    """The master's count of tasks waiting for placement per capacity group, read from the
    store at most once a second: the master may be another process."""

    def __init__(self, store: Leadership, ttl_sec: float = 1.0):
        self.store = store
        self.ttl_sec = ttl_sec
        self._at = float("-inf")
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def fresh(self) -> bool:
        return time.monotonic() - self._at <= self.ttl_sec

    def __call__(self) -> Mapping[str, int]:
        with self._lock:
            if time.monotonic() - self._at > self.ttl_sec:
                raw = self.store.get_meta(PENDING_BY_GROUP_META)
                try:
                    self._counts = {str(k): int(v) for k, v in json.loads(raw or "{}").items()}
                except (ValueError, AttributeError):
                    self._counts = {}
                self._at = time.monotonic()
            return self._counts
