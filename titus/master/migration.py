"""Instance group lifecycle: service tasks leave the hosts of phased-out groups.

An operator phases out an instance group to retire its hosts (a new image, a new
instance type). Those hosts take no new work (cluster_config.schedulable); the service
tasks already there are killed a few at a time, at most one per job at once, so each
job's replacement starts on an active host before the next of its tasks goes. Batch
tasks are left to finish.
"""

from __future__ import annotations

from typing import Protocol

from titus.master import metrics as m
from titus.master.cluster import HostView
from titus.master.cluster_config import ATTR_MACHINE_GROUP, phased_out
from titus.master.view import LeaderView
from titus.model.job import Task
from titus.model.states import Reason, TaskState

MIGRATION_MESSAGE = "moved off a host of phased-out instance group"


class Migrating(Protocol):
    """What moving tasks off phased-out hosts needs of the leadership."""

    @property
    def view(self) -> LeaderView: ...
    def hosts(self) -> list[HostView]: ...
    def kill(self, task: Task, reason: str, message: str) -> None: ...


def migrate(
    leader: Migrating, migrating: set[str], instance_groups: dict[str, str], at_once: int
) -> set[str]:
    """Kill service tasks on phased-out hosts while fewer than `at_once` are on their way
    (`migrating`: the tasks killed so far); the tasks on their way after this round."""
    view = leader.view
    migrating = {t for t in migrating if view.state(t) == TaskState.KILL_INITIATED}
    phased = phased_out(instance_groups)
    budget = at_once - len(migrating)
    if not phased or budget <= 0:
        return migrating
    busy_jobs = {view.job_of(t) for t in migrating}
    for host in leader.hosts():
        group = host.attributes.get(ATTR_MACHINE_GROUP, "")
        if group not in phased:
            continue
        for task_id in view.on_host(host.host_id):
            if budget <= 0:
                return migrating
            job_id = view.job_of(task_id)
            job = view.jobs.get(job_id or "")
            if (
                job is None
                or job.jobDescriptor.service is None
                or job_id in busy_jobs
                or view.state(task_id) != TaskState.STARTED
            ):
                continue
            task = view.get(task_id)
            assert task is not None
            leader.kill(task, Reason.KILLED, f"{MIGRATION_MESSAGE} {group}")
            migrating.add(task_id)
            busy_jobs.add(job_id)
            budget -= 1
            m.MIGRATIONS.inc()
    return migrating
