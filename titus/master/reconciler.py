"""Desired vs actual for one job: a pure function from (job, its tasks) to actions.

The reconciler never performs anything itself; the leader's executor (executor.py) carries
its actions out. Nothing here reads a clock: the time is passed in, and a new task's id
is derived from what it replaces (`task_id_for`), so the same inputs always give the same
output.
Each action is idempotent and derived from state only, so running the reconciler twice
on the same state yields the same actions, and a new leader reaching the same state
decides the same thing.

Finished tasks of an active job stay in the active set until the reconciler has decided
what follows them (a retry, a replacement, nothing): a leader failing over in between
reads the same facts and decides again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from titus.master.backoff import combined_delay_ms
from titus.model.job import Job, Task, TaskStatus
from titus.model.names import AgentContext, TaskContextKey
from titus.model.states import SYSTEM_ERRORS, JobState, Reason, TaskState

# taskContext keys the reconciler relies on (titus.model.names has them all)
INDEX = TaskContextKey.INDEX
RESUBMIT_NUMBER = TaskContextKey.RESUBMIT_NUMBER
SYSTEM_RESUBMIT_NUMBER = TaskContextKey.SYSTEM_RESUBMIT_NUMBER
RESUBMIT_OF = TaskContextKey.RESUBMIT_OF
ORIGINAL_ID = TaskContextKey.ORIGINAL_ID
RETRY_DELAY = TaskContextKey.RETRY_DELAY
NOT_BEFORE = TaskContextKey.NOT_BEFORE
KILL_REASON = TaskContextKey.KILL_REASON


@dataclass(frozen=True)
class CreateTask:
    job_id: str
    index: int
    resubmit_of: Task | None = None
    delay_ms: int = 0
    system_retry: bool = False


@dataclass(frozen=True)
class KillTask:
    task: Task
    reason: str
    #: What the task's status says of the kill; empty: "kill requested (<reason>)".
    message: str = ""


@dataclass(frozen=True)
class FinishUnlaunched:
    """A task that never reached a host ends at once, without a kill on any host."""

    task: Task
    reason: str
    message: str = ""


@dataclass(frozen=True)
class ArchiveTask:
    task: Task


@dataclass(frozen=True)
class FinishJob:
    """The job ends: written Finished, then archived with its tasks (one already written
    Finished, its archive cut short, is archived only)."""

    job: Job
    reason: str = "normal"
    message: str = ""


Action = CreateTask | KillTask | FinishUnlaunched | ArchiveTask | FinishJob


@dataclass
class RetryBudget:
    """How many retries a failed instance has used: system failures never count."""

    resubmits: int = 0
    system_resubmits: int = 0

    @property
    def user_retries_used(self) -> int:
        return self.resubmits - self.system_resubmits


def budget_of(task: Task) -> RetryBudget:
    ctx = task.taskContext
    return RetryBudget(
        int(ctx.get(RESUBMIT_NUMBER, "0")), int(ctx.get(SYSTEM_RESUBMIT_NUMBER, "0"))
    )


def is_live(task: Task) -> bool:
    return task.state != TaskState.FINISHED


def kill_or_finish(task: Task, reason: str, message: str = "") -> Action | None:
    """What ending a live task takes: nothing on a host for one not placed yet, a kill for
    one that is, nothing more for one already being killed. The leader uses it for queued
    kill requests too (`message`: the request's, such as who asked)."""
    if task.state == TaskState.ACCEPTED:
        return FinishUnlaunched(task, reason, "killed before it was placed on a host")
    if task.state == TaskState.KILL_INITIATED:
        return None
    return KillTask(task, reason, message)


@dataclass
class _Instance:
    index: int
    tasks: list[Task] = field(default_factory=list)

    @property
    def current(self) -> Task:
        return max(self.tasks, key=lambda t: budget_of(t).resubmits)


def _by_index(tasks: list[Task]) -> dict[int, _Instance]:
    out: dict[int, _Instance] = {}
    for t in tasks:
        out.setdefault(t.index, _Instance(t.index)).tasks.append(t)
    return out


def _should_retry(job: Job, task: Task) -> tuple[bool, bool]:
    """(retry?, is it a system retry?) for a finished task."""
    reason = task.status.reasonCode
    if reason == Reason.NORMAL:
        return False, False
    if reason in (Reason.KILLED, Reason.INVALID_REQUEST):
        return False, False
    if reason in SYSTEM_ERRORS:
        return True, True
    d = job.jobDescriptor
    if reason == Reason.RUNTIME_LIMIT_EXCEEDED and not (d.batch and d.batch.retryOnRuntimeLimit):
        return False, False
    return budget_of(task).user_retries_used < d.retry_policy.retries, False


def reconcile_job(job: Job, tasks: list[Task]) -> list[Action]:
    if job.status.state == JobState.FINISHED:
        # still active: its archive was cut short (a store error, a leader's end)
        return [FinishJob(job, job.status.reasonCode, job.status.reasonMessage)]
    if job.status.state == JobState.KILL_INITIATED:
        return _reconcile_killing(job, tasks)
    if job.jobDescriptor.batch is not None:
        return _reconcile_batch(job, tasks)
    return _reconcile_service(job, tasks)


def _reconcile_killing(job: Job, tasks: list[Task]) -> list[Action]:
    actions: list[Action] = []
    for t in tasks:
        if is_live(t):
            action = kill_or_finish(t, Reason.KILLED)
            if action is not None:
                actions.append(action)
    if not any(is_live(t) for t in tasks):
        actions.append(FinishJob(job, Reason.KILLED, "job killed"))
    return actions


def _reconcile_batch(job: Job, tasks: list[Task]) -> list[Action]:
    batch = job.jobDescriptor.batch
    assert batch is not None
    actions: list[Action] = []
    instances = _by_index(tasks)
    done = 0
    failed = 0
    for index in range(batch.size):
        inst = instances.get(index)
        if inst is None:
            actions.append(CreateTask(job.id, index))
            continue
        current = inst.current
        for old in inst.tasks:
            if old is not current and not is_live(old):
                actions.append(ArchiveTask(old))
        if is_live(current):
            continue
        retry, system = _should_retry(job, current)
        if retry:
            attempt = budget_of(current).user_retries_used + (0 if system else 1)
            delay = 0 if system else job.jobDescriptor.retry_policy.delay_ms(attempt)
            actions.append(CreateTask(job.id, index, current, delay, system))
        else:
            done += 1
            failed += current.status.reasonCode != Reason.NORMAL
    for index, inst in instances.items():
        if index >= batch.size:
            actions.extend(
                a for t in inst.tasks if is_live(t) and (a := kill_or_finish(t, Reason.KILLED))
            )
    if done == batch.size and not any(is_live(t) for t in tasks):
        message = f"{batch.size - failed} of {batch.size} tasks succeeded"
        actions.append(FinishJob(job, Reason.NORMAL if not failed else Reason.FAILED, message))
    return actions


#: Scale-down kills tasks that do not run yet first, in this order (least progress first).
_NOT_RUNNING_ORDER = {
    TaskState.ACCEPTED: 0,
    TaskState.LAUNCHED: 1,
    TaskState.START_INITIATED: 2,
}


def scale_down_order(tasks: list[Task], count: int) -> list[Task]:
    """The `count` tasks a scale-down kills, in order.

    First the tasks that do not run yet (nobody depends on them; Accepted ones cost nothing
    to drop), least progress first, newest first. Then running tasks, each taken from the
    zone that has the most of the job's remaining running tasks, so what stays is as evenly
    spread over zones as it was or better; within a zone the newest goes first (the oldest
    have proven themselves).
    """
    if count <= 0:
        return []
    waiting = sorted(
        (t for t in tasks if t.state in _NOT_RUNNING_ORDER),
        key=lambda t: (_NOT_RUNNING_ORDER[t.state], -t.status.timestamp, t.id),
    )
    chosen = waiting[:count]
    left = count - len(chosen)
    if left <= 0:
        return chosen
    by_zone: dict[str, list[Task]] = {}
    for t in tasks:
        if t.state not in _NOT_RUNNING_ORDER:
            by_zone.setdefault(t.taskContext.get(AgentContext.ZONE, ""), []).append(t)
    for zone_tasks in by_zone.values():
        # oldest first, so pop() takes the newest
        zone_tasks.sort(key=lambda t: (t.status.timestamp, t.id))
    while left > 0 and by_zone:
        zone = max(by_zone, key=lambda z: (len(by_zone[z]), z))
        chosen.append(by_zone[zone].pop())
        if not by_zone[zone]:
            del by_zone[zone]
        left -= 1
    return chosen


def _reconcile_service(job: Job, tasks: list[Task]) -> list[Action]:
    service = job.jobDescriptor.service
    assert service is not None
    actions: list[Action] = []
    desired = service.capacity.desired
    live = [t for t in tasks if is_live(t) and t.state != TaskState.KILL_INITIATED]
    finished = [t for t in tasks if not is_live(t)]
    used_indexes = {t.index for t in tasks if is_live(t)}

    # finished tasks: replaced (if still wanted) and archived
    replacements: list[Task] = sorted(finished, key=lambda t: t.status.timestamp)
    for t in finished:
        actions.append(ArchiveTask(t))
    if not service.enabled:
        # disabled: its running tasks stay, nothing is created, replaced or scaled down
        # until it is enabled again
        return actions

    missing = desired - len(live)
    if missing > 0:
        free_indexes = (i for i in range(desired + len(tasks) + 1) if i not in used_indexes)
        for _ in range(missing):
            index = next(free_indexes)
            prior = replacements.pop(0) if replacements else None
            delay = 0
            system = False
            if prior is not None:
                system = prior.status.reasonCode in SYSTEM_ERRORS
                delay = job.jobDescriptor.retry_policy.delay_ms(budget_of(prior).resubmits + 1)
            actions.append(CreateTask(job.id, index, prior, delay, system))
    elif missing < 0:
        for t in scale_down_order(live, -missing):
            action = kill_or_finish(t, Reason.SCALED_DOWN)
            if action is not None:
                actions.append(action)
    return actions


#: The namespace of the task ids leaders derive (uuid5): any fixed UUID would do.
TASK_ID_NAMESPACE = uuid.UUID("6f1c2e8a-3b1d-5e7f-9a40-7d2c1b0e4f58")


def task_id_for(job: Job, action: CreateTask) -> str:
    """The id of the task `action` creates, derived from what it replaces.

    Two leaders that decide the same creation (a deposed one that has not stopped yet, and
    its successor) name the same task, so the store keeps one of them (a task row is
    created only if absent): nothing runs twice because two masters thought it missing.
    A replacement is named after the task it replaces; the first task of an index after
    the job and the index (a batch index starts once), and for a service job also the
    job's version, since a service index can start again after a scale down and up (each
    a new version of the job)."""
    if action.resubmit_of is not None:
        name = f"{action.resubmit_of.id}/next"
    elif job.jobDescriptor.is_batch:
        name = f"{job.id}/{action.index}"
    else:
        name = f"{job.id}/{action.index}/{job.version}"
    return str(uuid.uuid5(TASK_ID_NAMESPACE, name))


def new_task(job: Job, action: CreateTask, task_id: str, now_ms: int, system_delay: float) -> Task:
    """The task `action` creates, queued for placement at `now_ms`: it waits the longer of
    the job's retry delay and `system_delay` (seconds, the system backoff), and says why
    in its status message."""
    delay = combined_delay_ms(action.delay_ms, system_delay)
    ctx = new_task_context(
        job, action.index, task_id, action.resubmit_of, delay, action.system_retry, now_ms
    )
    message = "queued for placement"
    if delay:
        why = []
        if action.delay_ms:
            why.append(f"retry policy {action.delay_ms / 1000:g}s")
        if system_delay:
            why.append(f"system backoff {system_delay:g}s after repeated failures")
        message = f"retry delayed by {delay / 1000:g}s ({', '.join(why)})"
    return Task(
        id=task_id,
        jobId=job.id,
        originalId=ctx[ORIGINAL_ID],
        status=TaskStatus(state=TaskState.ACCEPTED, reasonMessage=message, timestamp=now_ms),
        taskContext=ctx,
    )


def new_task_context(
    job: Job,
    index: int,
    task_id: str,
    prior: Task | None,
    delay_ms: int,
    system_retry: bool,
    now_ms: int,
) -> dict[str, str]:
    """The context of a task about to be created, carrying its instance's retry history."""
    ctx = {INDEX: str(index)}
    if prior is None:
        ctx[ORIGINAL_ID] = task_id
        ctx[RESUBMIT_NUMBER] = "0"
        ctx[SYSTEM_RESUBMIT_NUMBER] = "0"
        return ctx
    b = budget_of(prior)
    ctx[ORIGINAL_ID] = prior.originalId
    ctx[RESUBMIT_OF] = prior.id
    ctx[RESUBMIT_NUMBER] = str(b.resubmits + 1)
    ctx[SYSTEM_RESUBMIT_NUMBER] = str(b.system_resubmits + (1 if system_retry else 0))
    moved = prior.taskContext.get(TaskContextKey.RELOCATED) == "true"
    relocations = int(prior.taskContext.get(TaskContextKey.RELOCATIONS, "0")) + int(moved)
    if relocations:
        ctx[TaskContextKey.RELOCATIONS] = str(relocations)
    if delay_ms > 0:
        ctx[RETRY_DELAY] = f"{delay_ms}ms"
        ctx[NOT_BEFORE] = str(now_ms + delay_ms)
    return ctx
