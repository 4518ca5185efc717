"""Moving a task between two service jobs, as queued by the API's move requests.

A move changes three records at once (the task and both jobs' desired sizes) and must be
checked again when the leader gets to it, since the API only queued it: this module owns
that check, the one store write that does the move, and finding the moves a previous
leader left queued. It works on the leader's view and store with the leader's epoch, and
names the jobs it changed in `touched` for the reconciler.
"""

from __future__ import annotations

import logging

from titus.master import metrics as m
from titus.master import reconciler as rc
from titus.master.view import LeaderView
from titus.model.job import Capacity, Job, Task
from titus.model.names import TaskContextKey
from titus.model.states import JobState, Reason, TaskState
from titus.store.base import Conflict, JobStore, MoveRequest

log = logging.getLogger("titus.master")

#: taskContext key naming the job a moved task came from (as in Titus).
MOVED_FROM_JOB = TaskContextKey.MOVED_FROM_JOB


def apply_move_request(
    request: MoveRequest, view: LeaderView, store: JobStore, epoch: int, touched: set[str]
) -> None:
    """Move a task between two service jobs without touching its container: the task
    keeps its id and host, takes a free index in the target job, and the source job's
    desired size shrinks by one while the target's grows by one (the API only checked
    that the target may grow; it changed neither job). The task, both jobs and the
    request's deletion are one store write, so a leader dying at any point leaves either
    the request to do again or a move that is complete."""
    task = view.get(request.task_id)
    source = view.jobs.get(request.source_job_id)
    target = view.jobs.get(request.target_job_id)
    if task is not None and task.jobId == request.target_job_id:
        log.info("task %s already moved to job %s", task.id, task.jobId)
        store.delete_move_request(request, epoch=epoch)
        return
    refusal = move_refusal(request, task, source, target)
    if refusal is not None:
        log.warning(
            "move of task %s from %s to %s refused: %s",
            request.task_id,
            request.source_job_id,
            request.target_job_id,
            refusal,
        )
        m.MOVES.labels(result="refused").inc()
        store.delete_move_request(request, epoch=epoch)
        return
    assert task is not None and source is not None and target is not None
    src_service, tgt_service = source.jobDescriptor.service, target.jobDescriptor.service
    assert src_service is not None and tgt_service is not None
    src_desired = max(0, src_service.capacity.desired - 1)
    src_capacity = src_service.capacity.model_copy(
        update={"desired": src_desired, "min": min(src_service.capacity.min, src_desired)}
    )
    tgt_capacity = tgt_service.capacity.model_copy(
        update={"desired": tgt_service.capacity.desired + 1}
    )
    new_source = with_capacity(source, src_capacity)
    new_target = with_capacity(target, tgt_capacity)
    used = {t.index for t in view.tasks_of(target.id)}
    index = next(i for i in range(len(used) + 1) if i not in used)
    moved = task.with_status(
        task.state, Reason.NORMAL, f"moved from job {source.id} to job {target.id}"
    )
    moved.status.timestamp = max(moved.status.timestamp, task.status.timestamp)
    moved.jobId = target.id
    moved.taskContext[MOVED_FROM_JOB] = source.id
    moved.taskContext[rc.INDEX] = str(index)
    try:
        saved, saved_source, saved_target = store.move_task(
            moved, new_source, new_target, epoch=epoch
        )
    except Conflict as exc:
        # someone changed a job or the task meanwhile: read them again, try next time
        log.info("move of task %s deferred: %s", task.id, exc)
        for job_id in (source.id, target.id):
            fresh_job = store.get_job(job_id)
            if fresh_job is not None:
                view.put_job(fresh_job)
            store.mark_dirty(job_id)  # the request is still queued
        fresh_task = store.get_task(task.id)
        if fresh_task is not None and fresh_task.version > task.version:
            view.put_task(fresh_task)
        return
    view.put_job(saved_source)
    view.put_job(saved_target)
    view.put_task(saved)
    touched.update((source.id, target.id))
    m.MOVES.labels(result="moved").inc()


def move_refusal(
    request: MoveRequest, task: Task | None, source: Job | None, target: Job | None
) -> str | None:
    """Why a queued move cannot be done now (things changed since the API accepted it)."""
    if task is None or task.jobId != request.source_job_id:
        return "the task is no longer an active task of the source job"
    if task.state in (TaskState.FINISHED, TaskState.KILL_INITIATED):
        return f"the task is {task.state.value}"
    for name, job in (("source", source), ("target", target)):
        if job is None or job.status.state != JobState.ACCEPTED:
            return f"the {name} job is not active"
        if job.jobDescriptor.service is None:
            return f"the {name} job is not a service job"
    assert target is not None and target.jobDescriptor.service is not None
    capacity = target.jobDescriptor.service.capacity
    if capacity.desired + 1 > capacity.max:
        return f"the target job is at its max size {capacity.max}"
    return None


def with_capacity(job: Job, capacity: Capacity) -> Job:
    service = job.jobDescriptor.service
    assert service is not None
    descriptor = job.jobDescriptor.model_copy(
        update={"service": service.model_copy(update={"capacity": capacity})}
    )
    return job.model_copy(update={"jobDescriptor": descriptor})
