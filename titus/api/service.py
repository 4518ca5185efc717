"""What the API does to jobs, apart from HTTP: write the user's wish, wake the master.

The API never talks to hosts: it records desired state in the store (a new job, a new
capacity, a kill) and nudges the master, which acts on it. Writes use the version read,
so a concurrent change by the master or another caller is retried, never overwritten.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from titus.api.errors import ApiError, not_found
from titus.coord.base import Coordinator
from titus.model.job import Capacity, Job, JobDescriptor, JobStatus, Task
from titus.model.states import JobState, Reason, TaskState
from titus.model.validation import FieldError, parse_job_descriptor
from titus.store.base import Conflict, JobStore, KillRequest

log = logging.getLogger("titus.api")

CAS_ATTEMPTS = 20


class JobService:
    def __init__(self, store: JobStore, coord: Coordinator):
        self.store = store
        self.coord = coord

    def _nudge(self, job_id: str) -> None:
        self.store.mark_dirty(job_id)
        self.coord.wake()

    # ---- jobs ---------------------------------------------------------------------------
    def create_job(self, body: Any, caller: str = "", reason: str = "") -> Job:
        descriptor = parse_job_descriptor(body)
        return self.create_parsed(descriptor, caller, reason)

    def create_parsed(self, descriptor: JobDescriptor, caller: str = "", reason: str = "") -> Job:
        if caller:
            descriptor.attributes["titus.createdBy"] = caller
        if reason:
            descriptor.attributes["titus.callReason"] = reason
        job = Job(
            id=str(uuid.uuid4()),
            jobDescriptor=descriptor,
            status=JobStatus(state=JobState.ACCEPTED, reasonMessage="accepted"),
        )
        job = self.store.create_job(job)
        log.info(
            "create job %s app=%s type=%s caller=%s reason=%s",
            job.id,
            descriptor.applicationName,
            descriptor.job_type,
            caller or "-",
            reason or "-",
        )
        self._nudge(job.id)
        return job

    def get_job(self, job_id: str) -> Job:
        job = self.store.get_job(job_id)
        if job is None:
            raise not_found("job", job_id)
        return job

    def _change_job(self, job_id: str, change: Callable[[Job], Job | None]) -> Job:
        """Apply `change` to the current job with optimistic retries; None means no-op."""
        for _ in range(CAS_ATTEMPTS):
            job = self.get_job(job_id)
            if job.status.state == JobState.FINISHED:
                raise ApiError(409, f"job {job_id} is finished")
            new = change(job.model_copy(deep=True))
            if new is None:
                return job
            try:
                saved = self.store.update_job(new)
            except Conflict:
                continue
            self._nudge(job_id)
            return saved
        raise ApiError(
            503, f"job {job_id} is changing too fast; try again", headers={"Retry-After": "1"}
        )

    def kill_job(self, job_id: str, caller: str = "", reason: str = "") -> Job:
        def kill(job: Job) -> Job | None:
            if job.status.state != JobState.ACCEPTED:
                return None
            return job.with_status(
                JobState.KILL_INITIATED, Reason.KILLED, f"killed by {caller or 'user'}"
            )

        job = self._change_job(job_id, kill)
        log.info("kill job %s caller=%s reason=%s", job_id, caller or "-", reason or "-")
        return job

    def resize(self, job_id: str, capacity: Capacity, caller: str = "", reason: str = "") -> Job:
        errors = []
        if capacity.min < 0:
            errors.append(FieldError("min", "must not be negative"))
        if not (capacity.min <= capacity.desired <= capacity.max):
            errors.append(
                FieldError(
                    "$",
                    f"must satisfy min <= desired <= max "
                    f"(got {capacity.min}, {capacity.desired}, {capacity.max})",
                )
            )
        if errors:
            raise ApiError(400, "invalid capacity", errors)

        def change(job: Job) -> Job | None:
            service = job.jobDescriptor.service
            if service is None:
                raise ApiError(400, f"job {job_id} is a batch job; only service jobs resize")
            if job.status.state != JobState.ACCEPTED:
                raise ApiError(409, f"job {job_id} is being killed")
            service.capacity = capacity
            return job

        job = self._change_job(job_id, change)
        log.info(
            "resize job %s to %s caller=%s reason=%s",
            job_id,
            capacity.to_json(),
            caller or "-",
            reason or "-",
        )
        return job

    # ---- tasks --------------------------------------------------------------------------
    def get_task(self, task_id: str) -> Task:
        task = self.store.get_task(task_id)
        if task is None:
            raise not_found("task", task_id)
        return task

    def kill_task(
        self,
        task_id: str,
        *,
        shrink: bool = False,
        prevent_min_size_update: bool = False,
        caller: str = "",
        reason: str = "",
    ) -> None:
        task = self.get_task(task_id)
        if task.state == TaskState.FINISHED:
            raise ApiError(404, f"task {task_id} is not active (already finished)")
        if shrink:

            def lower(job: Job) -> Job | None:
                service = job.jobDescriptor.service
                if service is None:
                    raise ApiError(400, "shrink applies to service jobs only")
                cap = service.capacity
                if cap.desired <= 0:
                    return None
                if cap.desired - 1 < cap.min:
                    if prevent_min_size_update:
                        raise ApiError(400, f"shrinking would take desired below min ({cap.min})")
                    cap.min = cap.desired - 1
                cap.desired -= 1
                return job

            self._change_job(task.jobId, lower)
        self.store.add_kill_request(
            KillRequest(
                job_id=task.jobId,
                task_id=task_id,
                shrink=shrink,
                reason=Reason.KILLED,
                message=f"killed by {caller or 'user'}",
            )
        )
        self.coord.wake()
        log.info(
            "kill task %s shrink=%s caller=%s reason=%s",
            task_id,
            shrink,
            caller or "-",
            reason or "-",
        )
