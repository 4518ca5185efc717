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

import contextlib
import gc
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from titus.master import metrics as m
from titus.master import reconciler as rc
from titus.master.cluster import HostView
from titus.master.scheduler import (
    CapacityGroup,
    HostState,
    PlacementSummary,
    Scheduler,
    ScheduleResult,
    TaskRequest,
    eni_set_key,
)
from titus.master.scheduler.model import HostEnis
from titus.master.view import LeaderView
from titus.model.job import Job, Task
from titus.model.names import DEFAULT_CAPACITY_GROUP, AgentContext
from titus.model.states import JobState, TaskState
from titus.store.base import PENDING_BY_GROUP_META

#: Placements are written (one store write) and sent to the driver in chunks: the first
#: small, so hosts start at once, each next one twice as large up to MAX_LAUNCH_CHUNK, so
#: a big cycle costs few writes.
LAUNCH_CHUNK = 16
MAX_LAUNCH_CHUNK = 1024
#: Tasks a big pass places (and launches) first, before it places the rest.
FIRST_PLACED = LAUNCH_CHUNK
#: A placement pass is repeated at least this often even when nothing seems to change.
RESCHEDULE_SEC = 5.0
#: "Why pending" summaries (and status messages) written per iteration at most.
SUMMARY_WRITES_PER_ITERATION = 100


@dataclass
class PlacementMemo:
    """What placement remembers between passes, for one leadership."""

    #: The "why pending" message last written for each unplaced task.
    failures: dict[str, str] = field(default_factory=dict)
    #: The pending counts per capacity group last written to the store.
    pending_written: dict[str, int] | None = None
    #: (due time ms, view generation, hosts signature) of the last placement pass.
    last_schedule: tuple[int, int, tuple[object, ...]] | None = None


class Placing(Protocol):
    """What a placement pass needs of the leadership: its view and memory, the hosts, the
    scheduler, and the writes and launches it makes (with the leadership's epoch);
    `place` writes tasks Launched and sends them, never one without the other."""

    @property
    def view(self) -> LeaderView: ...
    @property
    def memo(self) -> PlacementMemo: ...
    @property
    def scheduler(self) -> Scheduler: ...
    @property
    def groups(self) -> dict[str, CapacityGroup]: ...
    def now_ms(self) -> int: ...
    def hosts(self) -> list[HostView]: ...
    def wants_offers(self, pending: bool) -> None: ...
    def schedulable(self, host: HostView) -> bool: ...
    def guard(self) -> None: ...
    def save_task(self, task: Task) -> Task: ...
    def place(self, tasks: list[Task]) -> list[Task]: ...
    def put_scheduler_result(self, task_id: str, job_id: str, record: str) -> None: ...
    def set_meta(self, key: str, value: str) -> None: ...


def schedule(leader: Placing) -> None:
    """One placement pass, skipped while the last one's outcome still holds."""
    now = leader.now_ms()
    if schedule_unchanged(leader, now):
        return
    with collector_paused():
        outcome = place(leader, now)
    if outcome is None:
        leader.memo.last_schedule = None  # more to do: the next pass must run
        return
    next_due, hosts = outcome
    # the view changes as this pass writes; the generation after it is what counts
    signature = hosts_signature(hosts, leader.schedulable)
    leader.memo.last_schedule = (next_due, leader.view.generation, signature)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector off for a placement pass.

    A big pass makes long-lived objects by the hundred thousand (each placed task's
    copies, specs, TaskInfos) and almost no cyclic garbage; every so many of them Python
    collects the oldest generation, which walks every object made since the start-up's
    freeze (leader.py `_load`) to find nothing: two such collections of 0.1 s each came
    in the middle of a 5,000-task offer cycle, holding every launch behind them (and the
    ACCEPT senders, which need the interpreter too). Collections resume after the pass;
    what is garbage then is collected as before."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def place(leader: Placing, now: int) -> tuple[int, list[HostView]] | None:
    """Place what is due; (when to look again at the latest, the hosts looked at), or None
    when this pass left work the next one must do at once."""
    pending: list[tuple[Job, Task]] = []
    by_group: dict[str, int] = {}
    next_due = now + int(RESCHEDULE_SEC * 1000)
    waiting = list(leader.view.pending)
    leader.view.prefetch(waiting)  # the documents of those not read yet, in one read
    for task_id in waiting:
        task = leader.view.get(task_id)
        if task is None:
            continue
        job = leader.view.jobs.get(task.jobId)
        if job is None or job.status.state != JobState.ACCEPTED:
            continue
        group = leader.view.group_of(job.id)
        by_group[group] = by_group.get(group, 0) + 1
        not_before = int(task.taskContext.get(rc.NOT_BEFORE, "0"))
        if not_before > now:
            next_due = min(next_due, not_before)
            continue
        pending.append((job, task))
    publish_pending(leader, by_group)
    leader.wants_offers(bool(pending))
    if not pending:
        # nothing waits: the last pass's unplaced counts are over (else the gauge, and
        # the alert on it, would hold them until something waits again)
        m.UNSCHEDULABLE.clear()
        return next_due, []
    hosts = leader.hosts()
    if not hosts:
        return next_due, hosts
    leader.guard()
    requests = {(r := task_request(job, task)).task_id: r for job, task in pending}
    by_id = {task.id: (job, task) for job, task in pending}
    chunks = LaunchChunks(leader, by_id)
    budget = max(leader.scheduler.config.tasks_per_iteration, 0)
    # The head of the queue first, launched while the rest is placed: a big pass's first
    # hosts start a scheduling run earlier. The rest goes to the other hosts (as they are
    # then), so a host's placements of one pass still go out in one launch.
    head = FIRST_PLACED if len(requests) > 2 * FIRST_PLACED and budget > FIRST_PLACED else None
    result = schedule_some(leader, list(requests.values()), hosts, head)
    chunks.add(result, hosts)
    if head is not None and result.deferred:
        chunks.flush()
        attempted = len(result.assignments) + len(result.unplaced)
        hosts = [h for h in leader.hosts() if h.host_id not in chunks.hosts]
        rest = schedule_some(
            leader, [requests[t] for t in result.deferred], hosts, budget - attempted
        )
        chunks.add(rest, hosts)
        result.unplaced.update(rest.unplaced)
        result.deferred = rest.deferred
        result.assignments.extend(rest.assignments)
    chunks.flush()
    m.ATTEMPTS.labels(result="deferred").inc(len(result.deferred))
    complete = record_unplaced(leader, result.unplaced, by_id)
    if result.assignments or result.deferred or not complete:
        return None
    return next_due, hosts


def schedule_some(
    leader: Placing, requests: list[TaskRequest], hosts: list[HostView], limit: int | None
) -> ScheduleResult:
    """One call of the scheduler on the hosts as they are now, with its metrics."""
    started = time.monotonic()
    result = leader.scheduler.schedule(
        requests,
        host_states(leader.view, hosts, leader.schedulable),
        leader.groups,
        leader.view.groups_usage(),
        limit=limit,
    )
    m.PLACEMENT_SECONDS.observe(time.monotonic() - started)
    m.ATTEMPTS.labels(result="placed").inc(len(result.assignments))
    m.ATTEMPTS.labels(result="unschedulable").inc(len(result.unplaced))
    return result


class LaunchChunks:
    """Placements written (one store write) and sent to the driver in chunks, the first
    small, so hosts start at once, each next one twice as large up to MAX_LAUNCH_CHUNK, so
    a big pass costs few writes. A host's placements of one scheduler call go out in one
    chunk: a driver may take a host's whole offer with the first launch to it (Mesos
    accepts an offer once), so a later chunk could find nothing left to launch on."""

    def __init__(self, leader: Placing, by_id: dict[str, tuple[Job, Task]]) -> None:
        self.leader = leader
        self.by_id = by_id
        self.chunk: list[tuple[Job, Task, HostView]] = []
        self.limit = LAUNCH_CHUNK
        #: Hosts placed on so far.
        self.hosts: set[str] = set()

    def add(self, result: ScheduleResult, hosts: list[HostView]) -> None:
        host_by_id = {h.host_id: h for h in hosts}
        by_host: dict[str, list[str]] = {}
        for assignment in result.assignments:
            by_host.setdefault(assignment.host_id, []).append(assignment.task_id)
        for host_id, task_ids in by_host.items():
            host = host_by_id[host_id]
            self.hosts.add(host_id)
            for task_id in task_ids:
                job, task = self.by_id[task_id]
                self.chunk.append((job, placed_on(task, host), host))
            if len(self.chunk) >= self.limit:
                self.flush()

    def flush(self) -> None:
        """Write the chunk's Launched states in one store write and send what the store
        took (`Placing.place`, which also drops their "why pending" summaries): hosts
        start on these while the next chunk is being written."""
        if not self.chunk:
            return
        chunk, self.chunk = self.chunk, []
        self.limit = min(2 * self.limit, MAX_LAUNCH_CHUNK)
        leader = self.leader
        tasks = [task for _, task, _ in chunk]
        saved = leader.place(tasks)
        for launched, stored in zip(tasks, saved, strict=True):
            if stored.state != TaskState.LAUNCHED:
                continue  # the store had it move on meanwhile (killed): nothing launched
            queued = self.by_id[launched.id][1]
            queued_at = max(
                queued.status.timestamp, int(queued.taskContext.get(rc.NOT_BEFORE, "0"))
            )
            m.QUEUE_TO_PLACED.observe(max(0.0, (leader.now_ms() - queued_at) / 1000.0))


def placed_on(task: Task, host: HostView) -> Task:
    """The task as launched on `host`: Launched, with the host's facts in its context."""
    launched = task.with_status(TaskState.LAUNCHED, "normal", f"placed on {host.host_id}")
    launched.taskContext.update(
        {
            AgentContext.ID: host.host_id,
            AgentContext.HOST: host.attributes.get("host", host.host_id),
            AgentContext.ZONE: host.attributes.get("zone", ""),
            AgentContext.REGION: host.attributes.get("region", ""),
            AgentContext.INSTANCE_ID: host.attributes.get("instanceId", host.host_id),
            AgentContext.INSTANCE_TYPE: host.attributes.get("itype", ""),
        }
    )
    return launched


def hosts_signature(
    hosts: list[HostView], schedulable: Callable[[HostView], bool]
) -> tuple[object, ...]:
    return tuple(
        (h.host_id, h.healthy, schedulable(h), tuple(h.total.values()), h.enis) for h in hosts
    )


def schedule_unchanged(leader: Placing, now: int) -> bool:
    """True when the last pass's outcome still holds: no job or task changed, the same
    hosts in the same health and lifecycle, no retry delay ended, and the last pass is
    recent. A placement pass over a backlog costs time per pending task; repeating
    it when nothing changed would make an idle leader's loop cost O(backlog)."""
    last = leader.memo.last_schedule
    if last is None or now >= last[0]:
        return False
    if leader.view.generation != last[1]:
        return False
    return hosts_signature(leader.hosts(), leader.schedulable) == last[2]


def record_unplaced(
    leader: Placing, unplaced: dict[str, PlacementSummary], by_id: dict[str, tuple[Job, Task]]
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
        if leader.memo.failures.get(task_id) == message:
            continue
        if writes >= SUMMARY_WRITES_PER_ITERATION:
            continue  # the rest next time: an iteration's writes stay bounded
        writes += 1
        job, task = by_id[task_id]
        record = {
            "taskId": task_id,
            "jobId": job.id,
            "capacityGroup": leader.view.group_of(job.id),
            "hostsConsidered": summary.hosts_considered,
            "refusedBy": refused,
            "message": message,
            "timestamp": leader.now_ms(),
        }
        leader.put_scheduler_result(task_id, job.id, json.dumps(record))
        current = leader.view.get(task_id) or task
        status = current.status.model_copy(update={"reasonMessage": f"pending: {message}"})
        leader.save_task(current.model_copy(update={"status": status}))
        leader.memo.failures[task_id] = message
    for plugin, count in worst.items():
        m.UNSCHEDULABLE.labels(plugin=plugin).set(count)
    return writes < SUMMARY_WRITES_PER_ITERATION


def publish_pending(leader: Placing, by_group: dict[str, int]) -> None:
    """Pending counts per group: a gauge, and (when changed) the store's record that the
    API checks before admitting more work into a group."""
    if by_group == leader.memo.pending_written:
        return
    for group in set(leader.memo.pending_written or {}) | set(by_group):
        m.PENDING.labels(capacity_group=group).set(by_group.get(group, 0))
    leader.set_meta(PENDING_BY_GROUP_META, json.dumps(by_group))
    leader.memo.pending_written = dict(by_group)


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
        ip_slots=1.0 if r.allocateIP else 0.0,
        security_groups=eni_set_key(d.container.securityProfile.securityGroups),
        job_type=d.job_type,
        capacity_group=d.capacityGroup or DEFAULT_CAPACITY_GROUP,
        hard_constraints=dict(d.container.hardConstraints.constraints),
        soft_constraints=dict(d.container.softConstraints.constraints),
        enqueued_at=task.status.timestamp / 1000.0,
    )


def host_states(
    view: LeaderView, hosts: list[HostView], schedulable: Callable[[HostView], bool]
) -> list[HostState]:
    out = []
    sets: dict[str, str | None] = {}
    for h in hosts:
        usage = view.usage_of(h.host_id)
        enis = None if h.enis is None else merged_enis(h.enis, eni_counts(view, usage.jobs, sets))
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
                job_counts=usage.jobs,  # read only, for this pass: not copied
                enis=enis,
            )
        )
    return out


def eni_counts(
    view: LeaderView, jobs: dict[str, int], sets: dict[str, str | None]
) -> dict[str, int]:
    """Tasks taking an address on a host, per security-group set, from the jobs it runs
    (`sets` caches each job's set for one pass; None: the job takes no address)."""
    counts: dict[str, int] = {}
    for job_id, count in jobs.items():
        if job_id not in sets:
            job = view.jobs.get(job_id)
            container = job.jobDescriptor.container if job is not None else None
            sets[job_id] = (
                eni_set_key(container.securityProfile.securityGroups)
                if container is not None and container.resources.allocateIP
                else None
            )
        key = sets[job_id]
        if key is not None:
            counts[key] = counts.get(key, 0) + count
    return counts


def merged_enis(published: HostEnis, tasks: dict[str, int]) -> HostEnis:
    """A host's ENIs as the agent last published them, with the tasks the leader placed
    there since: tasks of a set beyond the addresses the agent counted take free
    addresses of the set's ENIs first, then new ENIs, as the agent will. A set the agent
    counts more of than the leader (tasks that ended, not yet given back) keeps the
    agent's figures: the merge never frees what the host may still hold."""
    per = max(published.ips_per_eni, 1)
    sets = dict(published.sets)
    for key, n in tasks.items():
        enis, used = sets.get(key, (0, 0))
        if used <= 0:
            enis = 0
        extra = n - used
        if extra <= 0:
            continue
        room = enis * per - used
        new = max(0, extra - room)
        sets[key] = (enis + -(-new // per), used + extra)
    return HostEnis(published.max_enis, published.ips_per_eni, sets)
