"""Evictions, as Titus's eviction service offered them: how many of a job's tasks (or a
capacity group's, or the whole system's) may be taken down now, and a task taken down
only when its job's disruption budget allows.

A job's quota is its budget evaluated (titus.model.disruption.job_quota) over the tasks
the API sees and the disruptions the leader recorded, less the evictions already queued;
the system's is `eviction_system_per_minute` less the disruptions of the last minute; a
capacity group's is the smaller of the system's and the sum of its jobs'. An eviction the
quota allows is queued for the leader, which checks the budget again when it acts (it
alone sees every disruption) and takes the task down with a message that says who evicted
it and why; one the quota does not allow is refused with 429, as Kubernetes refuses an
eviction its disruption budget does not allow. A user's own kill never asks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from titus.api.auth import Principal
from titus.api.errors import ApiError
from titus.api.policy import require_owner
from titus.api.view import ActiveView
from titus.model.disruption import DISRUPTIONS_META, Quota, decode, job_quota
from titus.model.job import Job
from titus.model.names import DEFAULT_CAPACITY_GROUP
from titus.model.states import JobState, Reason, TaskState
from titus.store.records import KillRequest

MINUTE_MS = 60_000
MAX_REASON_CHARS = 256


@dataclass(frozen=True)
class _Disruptions:
    history: dict[str, list[int]]
    queued: dict[str, int]
    now: int


class EvictionService:
    def __init__(
        self,
        store: Any,
        view: ActiveView,
        get_job: Callable[[str], Job],
        system_per_minute: int,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.view = view
        self.get_job = get_job
        self.system_per_minute = system_per_minute
        self.clock = clock
        self._lock = threading.Lock()  # one eviction decided at a time in this process

    def _read(self) -> _Disruptions:
        """What every quota of one call is decided on, read from the store once: the
        leader's record of disruptions and the evictions queued but not carried out."""
        queued: dict[str, int] = {}
        for request in self.store.list_all_kill_requests():
            if request.eviction:
                queued[request.job_id] = queued.get(request.job_id, 0) + 1
        history = decode(self.store.get_meta(DISRUPTIONS_META), self.view.jobs)
        return _Disruptions(history, queued, int(self.clock() * 1000))

    def system_quota(self) -> Quota:
        return self._system(self._read())

    def job_quota(self, job_id: str) -> Quota:
        job = self.get_job(job_id)
        return self._job(job, self._read())

    def group_quota(self, group: str) -> Quota:
        known = self._read()
        jobs = [
            j
            for j in self.view.jobs.values()
            if (j.jobDescriptor.capacityGroup or DEFAULT_CAPACITY_GROUP) == group
            and j.status.state == JobState.ACCEPTED
        ]
        total = sum(max(0, self._job(j, known).allowed) for j in jobs)
        system = self._system(known)
        if system.allowed < total:
            return system
        why = "" if total else f"no job of capacity group {group} may lose a task now"
        return Quota(total, why)

    def _system(self, known: _Disruptions) -> Quota:
        recent = sum(
            1 for times in known.history.values() for t in times if known.now - t < MINUTE_MS
        )
        left = self.system_per_minute - recent - sum(known.queued.values())
        if left <= 0:
            return Quota(0, f"the system allows {self.system_per_minute} evictions a minute")
        return Quota(left)

    def _job(self, job: Job, known: _Disruptions) -> Quota:
        tasks = [
            self.view.tasks[t] for t in self.view.tasks_of.get(job.id, ()) if t in self.view.tasks
        ]
        own = job_quota(job, tasks, known.history.get(job.id, []), known.now)
        left = own.allowed - known.queued.get(job.id, 0)
        system = self._system(known)
        if system.allowed < left:
            return system
        if left <= 0:
            return Quota(0, own.reason or "evictions already queued use the budget up")
        return Quota(left)

    def evict(self, task_id: str, reason: str, who: Principal) -> dict[str, Any]:
        """Queue the task's eviction if its job's quota allows; 429 otherwise."""
        if len(reason) > MAX_REASON_CHARS:
            raise ApiError(400, f"reason: at most {MAX_REASON_CHARS} characters")
        task = self.store.get_task(task_id)
        if task is None or task.state == TaskState.FINISHED:
            raise ApiError(404, f"task {task_id} is not active")
        job = self.get_job(task.jobId)
        require_owner(who, job, "evict a task of")
        if task.state != TaskState.STARTED:
            raise ApiError(
                409, f"task {task_id} is {task.state.value}: only a running task is evicted"
            )
        with self._lock:
            quota = self._job(job, self._read())
            if quota.allowed <= 0:
                raise ApiError(
                    429,
                    f"task {task_id} may not be evicted now: {quota.reason} "
                    "(rule: disruption budget)",
                    headers={"Retry-After": "60"},
                )
            by = f" by {who.name}" if who.name else ""
            message = f"evicted{by}: {reason or 'no reason given'}"
            self.store.add_kill_request(
                KillRequest(job.id, task_id, reason=Reason.KILLED, message=message, eviction=True)
            )
        return {"taskId": task_id, "jobId": job.id, "message": message}
