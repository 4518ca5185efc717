"""Unhealthy service tasks are replaced, within their job's disruption budget.

A task whose container health check fails `retries` times in a row is reported unhealthy
by its host (titus/agent/task_health.py). For a service job that is a task taking no
traffic: the leader kills it with a reason that says so, and the reconciler starts its
replacement as for any ended service task. The kill is a disruption the platform makes,
so it counts in the budget's rate and time windows; the task is already unavailable, so
taking it down costs the job no availability, and the availability part of the budget is
asked as if it were still up. Without a budget, one task of a job is replaced at a time:
the next waits until the replacement runs. A budget that names the `healthCheck` health
provider counts unhealthy tasks as unavailable for every other voluntary disruption too
(phase-out asks `available`), as Titus's containerHealthProviders did.
"""

from __future__ import annotations

from typing import Protocol

from titus.master import metrics as m
from titus.master.view import LeaderView
from titus.model.disruption import available, is_unhealthy, quota, recent
from titus.model.health import health_check_of
from titus.model.job import Job, Task
from titus.model.names import TaskContextKey
from titus.model.states import Reason, TaskState

UNHEALTHY_MESSAGE = "replaced: its container health check failed"


class Replacing(Protocol):
    @property
    def view(self) -> LeaderView: ...
    def kill(self, task: Task, reason: str, message: str) -> None: ...


def replace_unhealthy(
    leader: Replacing,
    disrupted: dict[str, list[int]],
    now_ms: int,
    checked: dict[str, bool],
) -> int:
    """Kill the unhealthy service tasks the budgets allow; how many. `checked` remembers
    which jobs have a health check at all (a job's container does not change)."""
    view = leader.view
    killed = 0
    for job in list(view.jobs.values()):
        if not _has_check(job, checked):
            continue
        tasks = view.tasks_of(job.id)
        sick = sorted(
            (t for t in tasks if t.state == TaskState.STARTED and is_unhealthy(t)),
            key=lambda t: t.id,  # one order whatever the view's: the same one goes first
        )
        if not sick:
            continue
        history = recent(disrupted, job.id, now_ms)
        d = job.jobDescriptor
        allowed = quota(
            d.disruptionBudget, d.task_demand, available(tasks) + len(sick), history, now_ms
        ).allowed
        for task in sick[: max(0, allowed)]:
            output = task.taskContext.get(TaskContextKey.HEALTH_OUTPUT, "")
            message = UNHEALTHY_MESSAGE + (f": {output}" if output else "")
            leader.kill(task, Reason.FAILED, message)
            history.append(now_ms)
            killed += 1
            m.UNHEALTHY_REPLACED.inc()
    for gone in [j for j in checked if j not in view.jobs]:
        del checked[gone]
    return killed


def _has_check(job: Job, checked: dict[str, bool]) -> bool:
    if job.id not in checked:
        d = job.jobDescriptor
        checked[job.id] = (
            d.service is not None and health_check_of(d.container.attributes) is not None
        )
    return checked[job.id]
