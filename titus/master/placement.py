"""The placement pass: which pending tasks are due, what the scheduler is asked, and what
is done with its answer.

It exists apart from the leader loop because turning the view into scheduler input
(task requests, host states), writing each placed task as launched before it reaches a
host, and keeping "why pending" summaries cheap (written only when they change, a bounded
number per pass) are one concern with their own rules; the loop only says when a pass
runs. A pass is skipped while its last outcome still holds, so an idle leader's loop does
not cost time per pending task.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from titus.master import metrics as m
from titus.master import reconciler as rc
from titus.master.cluster import HostView, Placement
from titus.master.scheduler import HostState, PlacementSummary, TaskRequest
from titus.master.view import ActiveView
from titus.model.job import Job, Task, now_ms
from titus.model.launch import TaskSpec
from titus.model.states import JobState, TaskState
from titus.store.base import PENDING_BY_GROUP_META

if TYPE_CHECKING:
    from titus.master.leader import Master

#: Placements sent to the driver as soon as this many are written.
LAUNCH_CHUNK = 16
#: A placement pass is repeated at least this often even when nothing seems to change.
RESCHEDULE_SEC = 5.0
#: "Why pending" summaries (and status messages) written per iteration at most.
SUMMARY_WRITES_PER_ITERATION = 100


def schedule(master: Master) -> None:
    """One placement pass, skipped while the last one's outcome still holds."""
    now = now_ms()
    if schedule_unchanged(master, now):
        return
    outcome = place(master, now)
    if outcome is None:
        master.last_schedule = None  # more to do: the next pass must run
        return
    next_due, hosts = outcome
    # the view changes as this pass writes; the generation after it is what counts
    signature = hosts_signature(hosts, master.schedulable)
    master.last_schedule = (next_due, master.view.generation, signature)


def place(master: Master, now: int) -> tuple[int, list[HostView]] | None:
    """Place what is due; (when to look again at the latest, the hosts looked at), or None
    when this pass left work the next one must do at once."""
    pending: list[tuple[Job, Task]] = []
    by_group: dict[str, int] = {}
    next_due = now + int(RESCHEDULE_SEC * 1000)
    for task_id in list(master.view.pending):
        task = master.view.get(task_id)
        if task is None:
            continue
        job = master.view.jobs.get(task.jobId)
        if job is None or job.status.state != JobState.ACCEPTED:
            continue
        group = master.view.group_of(job.id)
        by_group[group] = by_group.get(group, 0) + 1
        not_before = int(task.taskContext.get(rc.NOT_BEFORE, "0"))
        if not_before > now:
            next_due = min(next_due, not_before)
            continue
        pending.append((job, task))
    publish_pending(master, by_group)
    master.driver.wants_offers(bool(pending))
    if not pending:
        return next_due, []
    hosts = master.driver.hosts()
    if not hosts:
        return next_due, hosts
    master.guard()
    requests = [task_request(job, task) for job, task in pending]
    started = time.monotonic()
    result = master.scheduler.schedule(
        requests,
        host_states(master.view, hosts, master.schedulable),
        master.groups,
        master.view.groups_usage(),
    )
    m.PLACEMENT_SECONDS.observe(time.monotonic() - started)
    m.ATTEMPTS.labels(result="placed").inc(len(result.assignments))
    m.ATTEMPTS.labels(result="unschedulable").inc(len(result.unplaced))
    m.ATTEMPTS.labels(result="deferred").inc(len(result.deferred))
    by_id = {task.id: (job, task) for job, task in pending}
    host_by_id = {h.host_id: h for h in hosts}
    placements = []
    for assignment in result.assignments:
        job, task = by_id[assignment.task_id]
        host = host_by_id[assignment.host_id]
        launched = task.with_status(TaskState.LAUNCHED, "normal", f"placed on {host.host_id}")
        launched.taskContext.update(
            {
                "agent.id": host.host_id,
                "agent.host": host.attributes.get("host", host.host_id),
                "agent.zone": host.attributes.get("zone", ""),
                "agent.region": host.attributes.get("region", ""),
                "agent.instanceId": host.attributes.get("instanceId", host.host_id),
                "agent.itype": host.attributes.get("itype", ""),
            }
        )
        saved = master.save_task(launched)
        queued_at = max(task.status.timestamp, int(task.taskContext.get(rc.NOT_BEFORE, "0")))
        m.QUEUE_TO_PLACED.observe(max(0.0, (now_ms() - queued_at) / 1000.0))
        placements.append(Placement(TaskSpec.for_task(job, saved), host.host_id))
        master.forget_pending(task.id)
        if len(placements) >= LAUNCH_CHUNK:
            # hosts start on the first tasks while the next are being written
            master.launch(placements)
            placements = []
    if placements:
        master.launch(placements)
    complete = record_unplaced(master, result.unplaced, by_id)
    if result.assignments or result.deferred or not complete:
        return None
    return next_due, hosts


def hosts_signature(
    hosts: list[HostView], schedulable: Callable[[HostView], bool]
) -> tuple[object, ...]:
    return tuple((h.host_id, h.healthy, schedulable(h), tuple(h.total.values())) for h in hosts)


def schedule_unchanged(master: Master, now: int) -> bool:
    """True when the last pass's outcome still holds: no job or task changed, the same
    hosts in the same health and lifecycle, no retry delay ended, and the last pass is
    recent. A placement pass over a backlog costs time per pending task; repeating
    it when nothing changed would make an idle leader's loop cost O(backlog)."""
    last = master.last_schedule
    if last is None or now >= last[0]:
        return False
    if master.view.generation != last[1]:
        return False
    return hosts_signature(master.driver.hosts(), master.schedulable) == last[2]


def record_unplaced(
    master: Master, unplaced: dict[str, PlacementSummary], by_id: dict[str, tuple[Job, Task]]
) -> bool:
    """Keep each unplaced task's summary in the store and its status message, but write
    only when the summary changed: a task pending for an hour costs a few writes.
    False when the write bound left some for the next pass."""
    m.UNSCHEDULABLE.clear()
    worst: dict[str, int] = {}
    writes = 0
    for task_id, summary in unplaced.items():
        refused = summary.refused_by
        if refused:
            plugin = max(refused, key=lambda k: refused[k])
            worst[plugin] = worst.get(plugin, 0) + 1
        message = summary.message
        if master.placement_failures.get(task_id) == message:
            continue
        if writes >= SUMMARY_WRITES_PER_ITERATION:
            continue  # the rest next time: an iteration's writes stay bounded
        writes += 1
        job, task = by_id[task_id]
        record = {
            "taskId": task_id,
            "jobId": job.id,
            "capacityGroup": master.view.group_of(job.id),
            "hostsConsidered": summary.hosts_considered,
            "refusedBy": refused,
            "message": message,
            "timestamp": now_ms(),
        }
        master.store.put_scheduler_result(task_id, job.id, json.dumps(record), epoch=master.epoch)
        current = master.view.get(task_id) or task
        status = current.status.model_copy(update={"reasonMessage": f"pending: {message}"})
        master.save_task(current.model_copy(update={"status": status}))
        master.placement_failures[task_id] = message
    for plugin, count in worst.items():
        m.UNSCHEDULABLE.labels(plugin=plugin).set(count)
    return writes < SUMMARY_WRITES_PER_ITERATION


def publish_pending(master: Master, by_group: dict[str, int]) -> None:
    """Pending counts per group: a gauge, and (when changed) the store's record that the
    API checks before admitting more work into a group."""
    if by_group == master.pending_written:
        return
    for group in set(master.pending_written or {}) | set(by_group):
        m.PENDING.labels(capacity_group=group).set(by_group.get(group, 0))
    master.store.set_meta(PENDING_BY_GROUP_META, json.dumps(by_group), epoch=master.epoch)
    master.pending_written = dict(by_group)


def task_request(job: Job, task: Task) -> TaskRequest:
    d = job.jobDescriptor
    r = d.container.resources
    return TaskRequest(
        task_id=task.id,
        job_id=job.id,
        cpu=r.cpu,
        memory_mb=float(r.memoryMB),
        disk_mb=float(r.diskMB),
        network_mbps=float(r.networkMbps),
        gpu=float(r.gpu),
        job_type=d.job_type,
        capacity_group=d.capacityGroup or "DEFAULT",
        hard_constraints=dict(d.container.hardConstraints.constraints),
        soft_constraints=dict(d.container.softConstraints.constraints),
        enqueued_at=task.status.timestamp / 1000.0,
    )


def host_states(
    view: ActiveView, hosts: list[HostView], schedulable: Callable[[HostView], bool]
) -> list[HostState]:
    out = []
    for h in hosts:
        usage = view.usage_of(h.host_id)
        out.append(
            HostState(
                host_id=h.host_id,
                total=h.total,
                used=usage.used_dict(),
                attributes=h.attributes,
                healthy=h.healthy,
                schedulable=schedulable(h),
                launching=usage.launching,
                task_count=usage.tasks,
                job_counts=dict(usage.jobs),
            )
        )
    return out
