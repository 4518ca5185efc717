"""The leader's in-memory copy of active jobs and tasks, with indexes kept up to date as
tasks change, so an iteration costs what changed rather than what exists.

Two things make a leader with 100,000 active tasks start in about a second and iterate in
milliseconds:

- Tasks loaded at start-up stay as unparsed rows (`TaskRow`: id, job, state, host, status
  time and the stored document) until the loop needs the task itself: a report that moves
  it, a kill, a reconciliation of its job. Most running tasks are never parsed.
- Every task's contribution to its host's usage (resources, task counts, tasks launching,
  tasks per job) and to its capacity group's usage is added when the task is put and taken
  back when it changes or goes, instead of being summed over all tasks each iteration.
  Pending (Accepted) and transitional (Launched, StartInitiated, KillInitiated) tasks are
  kept as sets, so placement and stuck detection look at those only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from titus.model.job import Job, Task
from titus.model.names import DEFAULT_CAPACITY_GROUP, RESOURCES
from titus.model.states import TASK_ON_HOST, TaskState
from titus.store.base import TaskRow
from titus.store.quarantine import decode_task

LAUNCHING = frozenset({TaskState.LAUNCHED, TaskState.START_INITIATED})
#: States a task may get stuck in (see stuck.py).
TRANSITIONAL = frozenset({TaskState.LAUNCHED, TaskState.START_INITIATED, TaskState.KILL_INITIATED})


def job_resources(job: Job) -> tuple[float, ...]:
    """A task of the job's demand, in RESOURCES order (one IP slot per container)."""
    r = job.jobDescriptor.container.resources
    return (r.cpu, float(r.memoryMB), float(r.diskMB), float(r.networkMbps), float(r.gpu), 1.0)


def job_group(job: Job) -> str:
    return job.jobDescriptor.capacityGroup or DEFAULT_CAPACITY_GROUP


@dataclass
class HostUsage:
    """What the tasks on one host use, summed as tasks come and go."""

    used: list[float] = field(default_factory=lambda: [0.0] * len(RESOURCES))
    tasks: int = 0
    launching: int = 0
    jobs: dict[str, int] = field(default_factory=dict)

    def used_dict(self) -> dict[str, float]:
        return dict(zip(RESOURCES, self.used, strict=True))


class _Entry(NamedTuple):
    """The index facts of one task: enough to keep every index without parsing it."""

    job_id: str
    state: TaskState
    agent_id: str | None
    timestamp: int


_STATES = {s.value: s for s in TaskState}


class LeaderView:
    """The active jobs and tasks as one leadership holds them (the API keeps its own
    `titus.api.view.ActiveView`, a cache of the store for reads)."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self._res: dict[str, tuple[float, ...]] = {}
        self._group: dict[str, str] = {}
        self._parsed: dict[str, Task] = {}
        self._rows: dict[str, TaskRow] = {}
        #: Jobs with a task whose stored document cannot be read (job id -> task id): the
        #: leader does not reconcile them, since it cannot see all of their tasks.
        self.unreadable: dict[str, str] = {}
        #: Index facts per task: an _Entry, or the TaskRow itself for tasks loaded at
        #: start-up (it has the same fields, so no second tuple per task is built).
        self._entries: dict[str, _Entry | TaskRow] = {}
        self.by_job: dict[str, set[str]] = {}
        self.by_host: dict[str, set[str]] = {}
        self.hosts: dict[str, HostUsage] = {}
        self.group_usage: dict[str, list[float]] = {}
        #: Accepted tasks (placement looks at these only).
        self.pending: set[str] = set()
        #: Tasks in a state they may get stuck in, with the time they entered it (ms).
        self.transitional: dict[str, int] = {}
        #: Finished tasks still in the active set (their job's reconciliation is due).
        self.finished: set[str] = set()
        #: Job ids, host ids and state names, one string object each (see `put_rows`).
        self._shared: dict[str, str] = {}
        #: Grows with every change to a job or task: placement is skipped while it (and
        #: the hosts) stay the same, so a backlog nobody can place costs nothing per loop.
        self.generation = 0

    # ---- jobs ---------------------------------------------------------------------------
    def put_job(self, job: Job) -> None:
        self.generation += 1
        self.jobs[job.id] = job
        self.by_job.setdefault(job.id, set())
        if job.id not in self._res:
            self._res[job.id] = job_resources(job)
            self._group[job.id] = job_group(job)

    def drop_job(self, job_id: str) -> None:
        self.generation += 1
        for task_id in list(self.by_job.get(job_id, ())):
            self._remove(task_id)
        self.by_job.pop(job_id, None)
        self.jobs.pop(job_id, None)
        self._res.pop(job_id, None)
        self._group.pop(job_id, None)

    def group_of(self, job_id: str) -> str:
        return self._group.get(job_id, DEFAULT_CAPACITY_GROUP)

    # ---- tasks --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    def put_task(self, task: Task) -> None:
        self._rows.pop(task.id, None)
        self._parsed[task.id] = task
        self._index(task.id, _Entry(task.jobId, task.state, task.agent_id, task.status.timestamp))

    def put_rows(self, rows: Iterable[TaskRow]) -> None:
        """Tasks loaded at start-up, parsed later on first use.

        The same indexes as `put_task`, built in one pass with host and group usage summed
        per (host, job) and charged once per pair: this is the start-up's inner loop."""
        entries = self._entries
        raw = self._rows
        by_job = self.by_job
        pending, finished, transitional = self.pending, self.finished, self.transitional
        on_host: dict[tuple[str, str], list[str]] = {}
        launching: dict[tuple[str, str], int] = {}
        # One string object per job id, host id and state: a store's rows bring a copy of
        # each per task (over 150 bytes a task), and the rows are kept.
        shared = self._shared
        for row in rows:
            # unpacked at once: cheaper than six named-field lookups per row
            task_id, job_id, version, state, agent_id, timestamp, document = row
            job_id = shared.setdefault(job_id, job_id)
            state = shared.setdefault(state, state)
            if agent_id is not None:
                agent_id = shared.setdefault(agent_id, agent_id)
            row = TaskRow(task_id, job_id, version, state, agent_id, timestamp, document)
            raw[task_id] = row
            if task_id in entries:  # not at start-up; keep the general path honest
                self._index(task_id, _Entry(job_id, _STATES[state], agent_id, int(timestamp or 0)))
                continue
            entries[task_id] = row
            ids = by_job.get(job_id)
            if ids is None:
                ids = by_job[job_id] = set()
            ids.add(task_id)
            if state == "Started":
                pass
            elif state == "Accepted":
                pending.add(task_id)
            elif state == "Finished":
                finished.add(task_id)
            if state in TRANSITIONAL:
                transitional[task_id] = int(timestamp or 0)
            if agent_id and state in TASK_ON_HOST:
                key = (agent_id, job_id)
                group = on_host.get(key)
                if group is None:
                    group = on_host[key] = []
                group.append(task_id)
                if state in LAUNCHING:
                    launching[key] = launching.get(key, 0) + 1
        for (host, job_id), task_ids in on_host.items():
            n = len(task_ids)
            usage = self.hosts.get(host)
            if usage is None:
                usage = self.hosts[host] = HostUsage()
            self.by_host.setdefault(host, set()).update(task_ids)
            usage.tasks += n
            usage.launching += launching.get((host, job_id), 0)
            usage.jobs[job_id] = usage.jobs.get(job_id, 0) + n
            res = self._res.get(job_id)
            if res is not None:
                group_used = self.group_usage.setdefault(
                    self._group.get(job_id, DEFAULT_CAPACITY_GROUP), [0.0] * len(RESOURCES)
                )
                for i, v in enumerate(res):
                    usage.used[i] += n * v
                    group_used[i] += n * v

    def drop_task(self, task: Task) -> None:
        self._remove(task.id)

    def get(self, task_id: str) -> Task | None:
        task = self._parsed.get(task_id)
        if task is None:
            row = self._rows.pop(task_id, None)
            if row is None:
                return None
            parsed = decode_task(row.raw, task_id)
            if parsed is None:
                # quarantined: it stays in the indexes (its host and state are known from
                # the plain columns), and its job is left alone until it can be read
                self.unreadable[row.job_id] = task_id
                return None
            task = parsed
            self._parsed[task_id] = task
        return task

    def settle_unreadable(self, job_id: str, task_id: str, repaired: Task | None) -> None:
        """An operator repaired unreadable task `task_id` (`repaired`, now read) or set it
        aside (None: gone from the active state). The job is reconciled again unless
        another of its tasks still cannot be read."""
        if self.unreadable.get(job_id) != task_id:
            return
        del self.unreadable[job_id]
        self._rows.pop(task_id, None)
        if repaired is None:
            self._remove(task_id)
        else:
            self.put_task(repaired)
        for other in self.by_job.get(job_id, ()):
            if other not in self._parsed and other not in self._rows:
                self.unreadable[job_id] = other  # it failed to read earlier
                return

    def state(self, task_id: str) -> TaskState | None:
        entry = self._entries.get(task_id)
        return _STATES[entry.state] if entry else None

    def agent_of(self, task_id: str) -> str | None:
        entry = self._entries.get(task_id)
        return entry.agent_id if entry else None

    def job_of(self, task_id: str) -> str | None:
        entry = self._entries.get(task_id)
        return entry.job_id if entry else None

    def tasks_of(self, job_id: str) -> list[Task]:
        out = []
        for task_id in list(self.by_job.get(job_id, ())):
            task = self.get(task_id)
            if task is not None:
                out.append(task)
        return out

    def on_host(self, host_id: str) -> list[str]:
        return list(self.by_host.get(host_id, ()))

    def usage_of(self, host_id: str) -> HostUsage:
        return self.hosts.get(host_id) or HostUsage()

    def groups_usage(self) -> dict[str, dict[str, float]]:
        return {g: dict(zip(RESOURCES, used, strict=True)) for g, used in self.group_usage.items()}

    # ---- indexes ------------------------------------------------------------------------
    def _index(self, task_id: str, entry: _Entry) -> None:
        self.generation += 1
        old = self._entries.get(task_id)
        if old is not None:
            self._unindex(task_id, old)
            if old.job_id != entry.job_id:  # a moved task leaves its old job
                self.by_job.get(old.job_id, set()).discard(task_id)
        self._entries[task_id] = entry
        self.by_job.setdefault(entry.job_id, set()).add(task_id)
        if entry.state == TaskState.ACCEPTED:
            self.pending.add(task_id)
        elif entry.state == TaskState.FINISHED:
            self.finished.add(task_id)
        if entry.state in TRANSITIONAL:
            since = entry.timestamp
            if old is not None and old.state == entry.state and task_id in self.transitional:
                since = self.transitional[task_id]
            self.transitional[task_id] = since
        if entry.state in TASK_ON_HOST and entry.agent_id:
            self._charge(task_id, entry, +1)

    def _unindex(self, task_id: str, entry: _Entry | TaskRow) -> None:
        self.pending.discard(task_id)
        self.finished.discard(task_id)
        self.transitional.pop(task_id, None)
        if entry.state in TASK_ON_HOST and entry.agent_id:
            self._charge(task_id, entry, -1)

    def _charge(self, task_id: str, entry: _Entry | TaskRow, sign: int) -> None:
        host = entry.agent_id
        assert host is not None
        res = self._res.get(entry.job_id)
        usage = self.hosts.get(host)
        if usage is None:
            usage = self.hosts[host] = HostUsage()
        on_host = self.by_host.setdefault(host, set())
        if sign > 0:
            on_host.add(task_id)
        else:
            on_host.discard(task_id)
        usage.tasks += sign
        if entry.state in LAUNCHING:
            usage.launching += sign
        n = usage.jobs.get(entry.job_id, 0) + sign
        if n > 0:
            usage.jobs[entry.job_id] = n
        else:
            usage.jobs.pop(entry.job_id, None)
        if res is not None:
            group = self.group_usage.setdefault(
                self._group.get(entry.job_id, DEFAULT_CAPACITY_GROUP), [0.0] * len(RESOURCES)
            )
            for i, v in enumerate(res):
                usage.used[i] += sign * v
                group[i] += sign * v
        if usage.tasks <= 0:
            self.hosts.pop(host, None)
            self.by_host.pop(host, None)

    def _remove(self, task_id: str) -> None:
        self.generation += 1
        entry = self._entries.pop(task_id, None)
        self._parsed.pop(task_id, None)
        self._rows.pop(task_id, None)
        if entry is None:
            return
        self._unindex(task_id, entry)
        tasks = self.by_job.get(entry.job_id)
        if tasks is not None:
            tasks.discard(task_id)
