"""The leader's in-memory copy of active jobs and tasks, with indexes kept up to date as
tasks change, so an iteration costs what changed rather than what exists.

Three things make a leader with a million active tasks start in seconds and hold little
per task:

- It holds each task's facts (job, state, host) and no document: its start-up reads the
  store's plain columns only (`Jobs.load_active_facts`), and a task's document is read
  (`Jobs.active_task_documents`) and parsed when the loop needs the task itself: a report
  that moves it, a kill, a reconciliation of its job (a job's documents in one read).
  Most running tasks are never read. A document that cannot be read is quarantined and
  its job left alone (`unreadable`), since the leader cannot see all of its tasks.
- The start-up builds every index in a few passes over columns (numpy, and C-level
  maps over the rows) instead of a Python loop per task (`load`).
- Every task's contribution to its host's usage (resources, task counts, tasks launching,
  tasks per job), to its capacity group's usage and to its job's count of live tasks is
  added when the task is put and taken back when it changes or goes, instead of being
  summed over all tasks each iteration. Pending (Accepted) and transitional (Launched,
  StartInitiated, KillInitiated) tasks are kept as sets, so placement and stuck detection
  look at those only.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, compress, count
from operator import ne
from typing import Protocol

import numpy as np
import numpy.typing as npt

from titus.model.job import Job, Task
from titus.model.names import DEFAULT_CAPACITY_GROUP, RESOURCES
from titus.model.states import TASK_ON_HOST, TaskState
from titus.store.base import JobTaskFacts
from titus.store.quarantine import decode_task

LAUNCHING = frozenset({TaskState.LAUNCHED, TaskState.START_INITIATED})
#: States a task may get stuck in (see stuck.py).
TRANSITIONAL = frozenset({TaskState.LAUNCHED, TaskState.START_INITIATED, TaskState.KILL_INITIATED})
#: States of tasks that no longer count among a job's live ones.
ENDING = frozenset({TaskState.FINISHED, TaskState.KILL_INITIATED})

#: What the view holds of every task: (job id, state, host id or None).
Facts = tuple[str, TaskState, str | None]

#: TaskState members in a fixed order: a state's code at start-up is its place here.
_STATES: tuple[TaskState, ...] = tuple(TaskState)
_STATE_CODES = {s.value: i for i, s in enumerate(_STATES)}


def _codes(states: Iterable[TaskState]) -> list[int]:
    return [_STATE_CODES[s.value] for s in states]


class TaskDocuments(Protocol):
    """Where the view reads the documents of tasks it holds only the facts of (the store)."""

    def active_task_documents(self, task_ids: Collection[str]) -> dict[str, str]: ...


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


class LeaderView:
    """The active jobs and tasks as one leadership holds them (the API keeps its own
    `titus.api.view.ActiveView`, a cache of the store for reads)."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self._res: dict[str, tuple[float, ...]] = {}
        self._group: dict[str, str] = {}
        #: Every task's facts; `_parsed` has the tasks the loop has looked at.
        self._facts: dict[str, Facts] = {}
        self._parsed: dict[str, Task] = {}
        #: Tasks whose stored document could not be read (quarantined).
        self._failed: set[str] = set()
        self._documents: TaskDocuments | None = None
        #: Jobs with a task whose stored document cannot be read (job id -> task id): the
        #: leader does not reconcile them, since it cannot see all of their tasks.
        self.unreadable: dict[str, str] = {}
        self.by_job: dict[str, set[str]] = {}
        #: Tasks on each host (in a state on a host), with their state: a new leader
        #: checks what each host reports against its own host's few tasks.
        self.by_host: dict[str, dict[str, TaskState]] = {}
        self.hosts: dict[str, HostUsage] = {}
        self.group_usage: dict[str, list[float]] = {}
        #: Per job, its tasks neither finished nor being killed.
        self._live: dict[str, int] = {}
        #: Accepted tasks (placement looks at these only).
        self.pending: set[str] = set()
        #: Tasks in a state they may get stuck in, with the time they entered it (ms).
        self.transitional: dict[str, int] = {}
        #: Finished tasks still in the active set (their job's reconciliation is due).
        self.finished: set[str] = set()
        #: Job ids and host ids, one string object each (see `load`).
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
        self._live.pop(job_id, None)

    def group_of(self, job_id: str) -> str:
        return self._group.get(job_id, DEFAULT_CAPACITY_GROUP)

    # ---- tasks --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._facts)

    def put_task(self, task: Task) -> None:
        self._failed.discard(task.id)
        self._parsed[task.id] = task
        self._index(task.id, (task.jobId, task.state, task.agent_id), task.status.timestamp)

    def load(self, tasks_by_job: Mapping[str, JobTaskFacts], documents: TaskDocuments) -> None:
        """The tasks of a start-up (their facts, by job; documents are read from
        `documents` when a task is first needed), with the indexes `put_task` keeps, built
        all at once.

        This is the start-up's inner loop, over a million tasks: no Python statement runs
        per task. Columns are chained and mapped to codes through dicts by C-level `map`s,
        grouped with numpy (sorts, counts, sums), and sets and dicts are made from whole
        lists."""
        self._documents = documents
        if self._facts:  # not at start-up: keep the general path honest
            for job_id, group in tasks_by_job.items():
                for task_id, state, host, stamp in zip(
                    group.ids, group.states, group.agent_ids, group.timestamps, strict=True
                ):
                    self._index(task_id, (job_id, TaskState(state), host), int(stamp))
            return
        if not tasks_by_job:
            return
        self.generation += 1
        shared = self._shared
        # One string object per job id and host id (a store's rows bring a copy per task),
        # and a code per job, state and host.
        job_names = [shared.setdefault(j, j) for j in tasks_by_job]
        groups = list(tasks_by_job.values())
        sizes = [len(g.ids) for g in groups]
        n = sum(sizes)
        jc = np.repeat(np.arange(len(job_names), dtype=np.intp), sizes)
        ids = list(chain.from_iterable(g.ids for g in groups))
        states = chain.from_iterable(g.states for g in groups)
        sc = np.fromiter(map(_STATE_CODES.__getitem__, states), np.intp, n)
        host_col = list(chain.from_iterable(g.agent_ids for g in groups))
        host_names: list[str | None] = [None]  # code 0: on no host
        host_names += [shared.setdefault(h, h) for h in dict.fromkeys(host_col) if h is not None]
        host_code = {h: i for i, h in enumerate(host_names)}
        hc = np.fromiter(map(host_code.__getitem__, host_col), np.intp, n)
        del host_col
        id_array = np.array(ids, dtype=object)
        job_array = np.array(job_names, dtype=object)
        state_array = np.array(_STATES, dtype=object)
        host_array = np.array(host_names, dtype=object)
        self._facts.update(
            zip(
                ids,
                zip(
                    job_array[jc].tolist(),
                    state_array[sc].tolist(),
                    host_array[hc].tolist(),
                    strict=True,
                ),
                strict=True,
            )
        )
        for job_id, group in zip(job_names, groups, strict=True):
            self.by_job.setdefault(job_id, set()).update(group.ids)

        def has(states: frozenset[TaskState]) -> npt.NDArray[np.bool_]:
            return np.isin(sc, _codes(states))

        self.pending.update(id_array[sc == _STATE_CODES[TaskState.ACCEPTED]].tolist())
        self.finished.update(id_array[sc == _STATE_CODES[TaskState.FINISHED]].tolist())
        moving = has(TRANSITIONAL)
        if moving.any():
            stamps = chain.from_iterable(g.timestamps for g in groups)
            times = np.fromiter(stamps, np.int64, n)[moving]
            self.transitional.update(zip(id_array[moving].tolist(), times.tolist(), strict=True))
        live = np.bincount(jc[~has(ENDING)], minlength=len(job_names)).tolist()
        for job_id, alive in zip(job_names, live, strict=True):
            if alive:
                self._live[job_id] = self._live.get(job_id, 0) + alive
        on = has(TASK_ON_HOST) & (hc > 0)
        if on.any():
            self._load_hosts(hc[on], jc[on], sc[on], id_array[on], job_array, host_names)

    def _load_hosts(
        self,
        hc: npt.NDArray[np.intp],
        jc: npt.NDArray[np.intp],
        sc: npt.NDArray[np.intp],
        ids: npt.NDArray[np.object_],
        job_array: npt.NDArray[np.object_],
        host_names: list[str | None],
    ) -> None:
        """Host and group usage of the tasks loaded on hosts (host code `hc`, job code `jc`,
        state code `sc` per task): what `_charge` adds task by task, summed per host and
        per group, and the tasks of each host."""
        hosts, jobs = len(host_names), len(job_array)
        # Each job's demand (nothing for a job not held: its tasks count, their use not)
        # and capacity group.
        demand = np.zeros((jobs, len(RESOURCES)))
        group_names: list[str] = []
        group_code: dict[str, int] = {}
        groups = np.zeros(jobs, dtype=np.intp)
        known = np.zeros(jobs, dtype=bool)
        for i, job_id in enumerate(job_array.tolist()):
            res = self._res.get(job_id)
            if res is None:
                continue
            known[i] = True
            demand[i] = res
            group = self._group.get(job_id, DEFAULT_CAPACITY_GROUP)
            code = group_code.get(group)
            if code is None:
                code = group_code[group] = len(group_names)
                group_names.append(group)
            groups[i] = code
        tasks = np.bincount(hc, minlength=hosts).tolist()
        starting = np.bincount(hc[np.isin(sc, _codes(LAUNCHING))], minlength=hosts).tolist()
        used = [
            np.bincount(hc, weights=demand[jc, r], minlength=hosts) for r in range(len(RESOURCES))
        ]
        used_by_host = np.stack(used, axis=1).tolist()
        # Tasks per (host, job): pairs sorted by host, then job.
        pairs, counts = np.unique(hc * jobs + jc, return_counts=True)
        pair_jobs = job_array[pairs % jobs].tolist()
        pair_counts = counts.tolist()
        ends = np.cumsum(np.bincount(pairs // jobs, minlength=hosts)).tolist()
        # Each host's tasks and their states: one sort by host, then slices.
        order = np.argsort(hc, kind="stable")
        ordered_ids = ids[order].tolist()
        ordered_states = np.array(_STATES, dtype=object)[sc[order]].tolist()
        starts = [0, *np.cumsum(tasks).tolist()]
        start = 0
        for code in range(1, hosts):
            end = ends[code]
            host = host_names[code]
            if not tasks[code] or host is None:
                start = end
                continue
            usage = self.hosts.get(host)
            if usage is None:
                usage = self.hosts[host] = HostUsage()
            usage.tasks += tasks[code]
            usage.launching += starting[code]
            per_job = zip(pair_jobs[start:end], pair_counts[start:end], strict=True)
            if usage.jobs:
                for job_id, n in per_job:
                    usage.jobs[job_id] = usage.jobs.get(job_id, 0) + n
            else:
                usage.jobs.update(per_job)
            for r, v in enumerate(used_by_host[code]):
                usage.used[r] += v
            first, last = starts[code], starts[code + 1]
            self.by_host.setdefault(host, {}).update(
                zip(ordered_ids[first:last], ordered_states[first:last], strict=True)
            )
            start = end
        counted = known[jc]
        by_group = np.stack(
            [
                np.bincount(
                    groups[jc[counted]], weights=demand[jc[counted], r], minlength=len(group_names)
                )
                for r in range(len(RESOURCES))
            ],
            axis=1,
        ).tolist()
        for name, sums in zip(group_names, by_group, strict=True):
            group_used = self.group_usage.setdefault(name, [0.0] * len(RESOURCES))
            for r, v in enumerate(sums):
                group_used[r] += v

    def drop_task(self, task: Task) -> None:
        self._remove(task.id)

    def parsed(self, task_id: str) -> Task | None:
        """The task if the view has read it already (no store read)."""
        return self._parsed.get(task_id)

    def get(self, task_id: str) -> Task | None:
        task = self._parsed.get(task_id)
        if task is None and task_id in self._facts and task_id not in self._failed:
            self.prefetch((task_id,))
            task = self._parsed.get(task_id)
        return task

    def prefetch(self, task_ids: Iterable[str]) -> None:
        """Read and parse, in one store read, the documents of those of `task_ids` the view
        holds only the facts of.

        A document that cannot be read is quarantined: the task stays in the indexes (its
        host and state are known from its facts) and its job is left alone until it can
        be read. A task the store no longer has as active (an operator set it aside) is
        gone from the view too."""
        parsed, facts, failed = self._parsed, self._facts, self._failed
        wanted = [t for t in task_ids if t not in parsed and t in facts and t not in failed]
        if not wanted:
            return
        if self._documents is None:
            raise RuntimeError("tasks loaded without a store to read their documents from")
        documents = self._documents.active_task_documents(wanted)
        for task_id in wanted:
            raw = documents.get(task_id)
            if raw is None:
                self._remove(task_id)
                continue
            task = decode_task(raw, task_id)
            if task is None:
                failed.add(task_id)
                self.unreadable[facts[task_id][0]] = task_id
                continue
            parsed[task_id] = task
            known = (task.jobId, task.state, task.agent_id)
            if known != facts[task_id]:  # the document says otherwise: it is the truth
                self._index(task_id, known, task.status.timestamp)

    def settle_unreadable(self, job_id: str, task_id: str, repaired: Task | None) -> None:
        """An operator repaired unreadable task `task_id` (`repaired`, now read) or set it
        aside (None: gone from the active state). The job is reconciled again unless
        another of its tasks still cannot be read."""
        if self.unreadable.get(job_id) != task_id:
            return
        del self.unreadable[job_id]
        self._failed.discard(task_id)
        if repaired is None:
            self._remove(task_id)
        else:
            self.put_task(repaired)
        for other in self.by_job.get(job_id, ()):
            if other in self._failed:
                self.unreadable[job_id] = other  # it failed to read earlier
                return

    def state(self, task_id: str) -> TaskState | None:
        facts = self._facts.get(task_id)
        return facts[1] if facts else None

    def agent_of(self, task_id: str) -> str | None:
        facts = self._facts.get(task_id)
        return facts[2] if facts else None

    def job_of(self, task_id: str) -> str | None:
        facts = self._facts.get(task_id)
        return facts[0] if facts else None

    def live_count(self, job_id: str) -> int:
        """Tasks of the job neither finished nor being killed (no task is read)."""
        return self._live.get(job_id, 0)

    def unconfirmed(
        self, host_id: str, task_ids: Sequence[str], states: Sequence[TaskState]
    ) -> list[int]:
        """Positions of the tasks host `host_id` reports (ids and states) that do not just
        confirm what the view holds: a task not known on this host, or in another state
        (a finished one never confirms: it is not on a host). A new leader asks this of
        every report of every host, so it runs as C-level maps over the host's own few
        tasks, not as a loop over reports."""
        known = self.by_host.get(host_id, {})
        return list(compress(count(), map(ne, map(known.get, task_ids), states)))

    def tasks_of(self, job_id: str) -> list[Task]:
        ids = list(self.by_job.get(job_id, ()))
        self.prefetch(ids)
        parsed = self._parsed
        return [task for task in map(parsed.get, ids) if task is not None]

    def on_host(self, host_id: str) -> list[str]:
        return list(self.by_host.get(host_id, ()))

    def usage_of(self, host_id: str) -> HostUsage:
        return self.hosts.get(host_id) or HostUsage()

    def groups_usage(self) -> dict[str, dict[str, float]]:
        return {g: dict(zip(RESOURCES, used, strict=True)) for g, used in self.group_usage.items()}

    # ---- indexes ------------------------------------------------------------------------
    def _index(self, task_id: str, facts: Facts, timestamp: int) -> None:
        self.generation += 1
        job_id, state, host = facts
        old = self._facts.get(task_id)
        if old is not None:
            self._unindex(task_id, old)
            if old[0] != job_id:  # a moved task leaves its old job
                self.by_job.get(old[0], set()).discard(task_id)
        self._facts[task_id] = facts
        self.by_job.setdefault(job_id, set()).add(task_id)
        if state == TaskState.ACCEPTED:
            self.pending.add(task_id)
        elif state == TaskState.FINISHED:
            self.finished.add(task_id)
        if state not in ENDING:
            self._live[job_id] = self._live.get(job_id, 0) + 1
        if state in TRANSITIONAL:
            since = timestamp
            if old is not None and old[1] == state and task_id in self.transitional:
                since = self.transitional[task_id]
            self.transitional[task_id] = since
        if state in TASK_ON_HOST and host:
            self._charge(task_id, facts, +1)

    def _unindex(self, task_id: str, facts: Facts) -> None:
        job_id, state, host = facts
        self.pending.discard(task_id)
        self.finished.discard(task_id)
        self.transitional.pop(task_id, None)
        if state not in ENDING:
            live = self._live.get(job_id, 0) - 1
            if live > 0:
                self._live[job_id] = live
            else:
                self._live.pop(job_id, None)
        if state in TASK_ON_HOST and host:
            self._charge(task_id, facts, -1)

    def _charge(self, task_id: str, facts: Facts, sign: int) -> None:
        job_id, state, host = facts
        assert host is not None
        res = self._res.get(job_id)
        usage = self.hosts.get(host)
        if usage is None:
            usage = self.hosts[host] = HostUsage()
        on_host = self.by_host.setdefault(host, {})
        if sign > 0:
            on_host[task_id] = state
        else:
            on_host.pop(task_id, None)
        usage.tasks += sign
        if state in LAUNCHING:
            usage.launching += sign
        n = usage.jobs.get(job_id, 0) + sign
        if n > 0:
            usage.jobs[job_id] = n
        else:
            usage.jobs.pop(job_id, None)
        if res is not None:
            group = self.group_usage.setdefault(
                self._group.get(job_id, DEFAULT_CAPACITY_GROUP), [0.0] * len(RESOURCES)
            )
            for i, v in enumerate(res):
                usage.used[i] += sign * v
                group[i] += sign * v
        if usage.tasks <= 0:
            self.hosts.pop(host, None)
            self.by_host.pop(host, None)

    def _remove(self, task_id: str) -> None:
        self.generation += 1
        facts = self._facts.pop(task_id, None)
        self._parsed.pop(task_id, None)
        self._failed.discard(task_id)
        if facts is None:
            return
        self._unindex(task_id, facts)
        tasks = self.by_job.get(facts[0])
        if tasks is not None:
            tasks.discard(task_id)
