"""Drains: service tasks leave the hosts of phased-out groups, hosts being terminated and
unhealthy hosts.

An operator phases out an instance group to retire its hosts (a new image, a new
instance type); a host that fails its health checks, or asked the cloud to terminate
it, is drained the same way. Those hosts take no new work (cluster_config.schedulable,
the scheduler's health filter); the service tasks already there are killed a few at a
time, each job's within its disruption budget (titus.model.disruption: without one, one
task of the job down at a time, so its replacement starts on an active host before the
next of its tasks goes). Batch tasks are left to finish, unless their job's budget has a
relocationLimit: then each may be moved (run again elsewhere, as a system retry) at most
that many times (`relocatable`). When more than
SYSTEMIC_UNHEALTHY_SHARE of the hosts are unhealthy at once the fault is taken as the
platform's, not the hosts', and unhealthy hosts are not drained.

A job whose migrationPolicy or budget is selfManaged is its owner's to move: the platform
notes when it first wanted each such task gone and steps in only after the owner's time
(the budget's relocationTimeMs, else the configured timeout) has passed.
"""

from __future__ import annotations

from typing import Protocol

from titus.master import metrics as m
from titus.master.cluster import HostView
from titus.master.cluster_config import ATTR_MACHINE_GROUP, ATTR_TERMINATING, phased_out
from titus.master.view import LeaderView
from titus.model.disruption import job_quota, recent
from titus.model.job import Job, Task
from titus.model.names import TaskContextKey
from titus.model.states import Reason, TaskState

MIGRATION_MESSAGE = "moved off a host of phased-out instance group"
DRAIN_TERMINATING = "moved off a host being terminated"
DRAIN_UNHEALTHY = "moved off an unhealthy host"
SYSTEMIC_UNHEALTHY_SHARE = 0.2


class Migrating(Protocol):
    """What moving tasks off phased-out hosts needs of the leadership."""

    @property
    def view(self) -> LeaderView: ...
    def hosts(self) -> list[HostView]: ...
    def kill(self, task: Task, reason: str, message: str) -> None: ...


def migrate(
    leader: Migrating,
    migrating: set[str],
    instance_groups: dict[str, str],
    at_once: int,
    disrupted: dict[str, list[int]],
    now_ms: int,
    wanted: dict[str, int] | None = None,
    self_managed_ms: int = 3_600_000,
) -> set[str]:
    """Kill service tasks on phased-out hosts while fewer than `at_once` are on their way
    (`migrating`: the tasks killed so far) and their job's budget allows (`disrupted`:
    when each job's tasks were disrupted, added to here); the tasks on their way after
    this round. `wanted`: when each self-managed task was first due to move (added to)."""
    wanted = {} if wanted is None else wanted
    view = leader.view
    for gone in [t for t in wanted if view.get(t) is None]:
        del wanted[gone]  # nothing left to wait for
    for ended in [j for j in disrupted if j not in view.jobs]:
        del disrupted[ended]
    migrating = {t for t in migrating if view.state(t) == TaskState.KILL_INITIATED}
    phased = phased_out(instance_groups)
    budget = at_once - len(migrating)
    if budget <= 0:
        return migrating
    allowed: dict[str, int] = {}
    hosts = leader.hosts()
    unhealthy = sum(not h.healthy for h in hosts)
    systemic = unhealthy > SYSTEMIC_UNHEALTHY_SHARE * len(hosts)
    for host in hosts:
        why = drain_reason(host, phased, drain_unhealthy=not systemic)
        if why is None:
            continue
        on_host = view.on_host(host.host_id)
        # the running tasks' documents not read yet, in one read rather than one each
        view.prefetch(t for t in on_host if view.state(t) == TaskState.STARTED)
        for task_id in on_host:
            if budget <= 0:
                return migrating
            job_id = view.job_of(task_id)
            job = view.jobs.get(job_id or "")
            if job is None or view.state(task_id) != TaskState.STARTED:
                continue
            task = view.get(task_id)
            if task is None or not relocatable(job, task):
                continue
            owner_time = self_managed_time(job, self_managed_ms)
            if owner_time is not None and now_ms - wanted.setdefault(task_id, now_ms) < owner_time:
                continue  # the owner's to move for now
            if job.id not in allowed:
                history = recent(disrupted, job.id, now_ms)
                allowed[job.id] = job_quota(job, view.tasks_of(job.id), history, now_ms).allowed
            if allowed[job.id] <= 0:
                continue
            if job.jobDescriptor.service is None:
                # a batch task's move is a system retry: its replacement runs the work
                # again without using up the job's retries, and counts one relocation
                moving = task.model_copy(deep=True)
                moving.taskContext[TaskContextKey.RELOCATED] = "true"
                leader.kill(moving, Reason.TRANSIENT_SYSTEM_ERROR, why)
            else:
                leader.kill(task, Reason.KILLED, why)
            migrating.add(task_id)
            allowed[job.id] -= 1
            disrupted.setdefault(job.id, []).append(now_ms)
            budget -= 1
            m.MIGRATIONS.inc()
    return migrating


def drain_reason(host: HostView, phased: set[str], drain_unhealthy: bool = True) -> str | None:
    """Why the service tasks on `host` should move elsewhere, or None: its instance group
    is phased out, it is being terminated, or it is unhealthy (a drain: the tasks go to
    healthy hosts within their budgets before the host is repaired or replaced)."""
    group = host.attributes.get(ATTR_MACHINE_GROUP, "")
    if group in phased:
        return f"{MIGRATION_MESSAGE} {group}"
    if host.attributes.get(ATTR_TERMINATING, "").lower() == "true":
        return DRAIN_TERMINATING
    if drain_unhealthy and not host.healthy:
        return DRAIN_UNHEALTHY
    return None


def relocatable(job: Job, task: Task) -> bool:
    """Whether a drain may move the task: a service task always (within its budget); a
    batch task only when its job's budget sets a relocationLimit it has not reached (a
    batch task is otherwise left to finish where it runs, as in Titus)."""
    if job.jobDescriptor.service is not None:
        return True
    budget = job.jobDescriptor.disruptionBudget
    limit = budget.relocationLimit.limit if budget and budget.relocationLimit else 0
    return int(task.taskContext.get(TaskContextKey.RELOCATIONS, "0")) < limit


def self_managed_time(job: Job, default_ms: int) -> int | None:
    """How long the job's owner has to move its tasks (ms), or None when it is the
    platform's to do at once."""
    budget = job.jobDescriptor.disruptionBudget
    if budget is not None and budget.selfManaged is not None:
        return budget.selfManaged.relocationTimeMs
    service = job.jobDescriptor.service
    policy = service.migrationPolicy if service is not None else None
    return default_ms if policy is not None and policy.selfManaged is not None else None
