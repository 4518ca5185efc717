"""The API's in-memory view of active jobs and tasks, kept current from the store's change
feed.

Listing 10,000 active jobs must not parse 10,000 JSON documents per request. The view
loads everything once, then applies the change feed: each change names one job or task,
which is read again by id (one parse per change, not per request). Every listing first
catches up with the feed, so a client sees its own writes. Items are kept sorted by their
paging key and with their API JSON ready, so a page is a bisect and a slice.

The same step that applies a change hands an event to the observe hub: the view and the
stream can never disagree, and one producer serves every watcher.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool

from titus.api.query import Key, Paging, job_key, task_key
from titus.model.job import Job, Task
from titus.store.base import Change
from titus.store.records import Created
from titus.store.roles import ChangeFeed, Jobs, TaskAttributes

log = logging.getLogger("titus.api.view")

BATCH = 2000
#: At most this many of this process's own creates wait for the view (see `take_created`);
#: beyond it, the feed's reads fetch them like anyone else's.
EARLY_LIMIT = BATCH


@dataclass
class Event:
    """One change as watchers see it: `seq` is the change feed's sequence number."""

    seq: int
    kind: str  # "job" | "task"
    op: str  # "put" | "archive"
    job_id: str
    body: dict[str, Any]
    job: Job | None = None
    task: Task | None = None
    text: str | None = None  # the SSE text, made once for every watcher (observe.py)


@dataclass
class _Loaded:
    """What a refresh read from the store (in a worker thread)."""

    full: bool
    seq: int
    jobs: list[Job]
    tasks: list[Task]
    removed: list[tuple[str, str, int]]  # (kind, id, seq)
    #: The final document of what was archived, by (kind, id): the last change before an
    #: archive (a job's Finished status) is often in the same batch and coalesced away.
    seqs: dict[tuple[str, str], int]
    finals: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


class SortedIndex:
    """Ids sorted by paging key; insert, remove and seek are O(log n) plus a list shift."""

    def __init__(self, keys: list[Key] | None = None) -> None:
        self.keys: list[Key] = sorted(keys) if keys else []

    def add(self, key: Key) -> None:
        i = bisect.bisect_left(self.keys, key)
        if i == len(self.keys) or self.keys[i] != key:
            self.keys.insert(i, key)

    def remove(self, key: Key) -> None:
        i = bisect.bisect_left(self.keys, key)
        if i < len(self.keys) and self.keys[i] == key:
            del self.keys[i]

    def page(
        self, paging: Paging, matches: Callable[[Key], bool] | None = None
    ) -> tuple[list[Key], int, bool]:
        """The keys of one page (those `matches` accepts, all when None), how many match in
        all, and whether more follow. Unfiltered, a page is a bisect and a slice."""
        after, skip, size = paging.after, paging.skip, paging.size
        if matches is None:
            start = 0 if after is None else bisect.bisect_right(self.keys, after)
            window = self.keys[start + skip : start + skip + size + 1]
            return window[:size], len(self.keys), len(window) > size
        page: list[Key] = []
        total, has_more = 0, False
        for key in self.keys:
            if not matches(key):
                continue
            total += 1
            if after is not None and key <= after:
                continue
            if skip:
                skip -= 1
            elif len(page) < size:
                page.append(key)
            else:
                has_more = True
        return page, total, has_more

    def __len__(self) -> int:
        return len(self.keys)


class ViewSource(Jobs, ChangeFeed, TaskAttributes, Protocol):
    """The store roles the view reads: the feed, the entities it names, their attributes."""


class ActiveView:
    def __init__(self, store: ViewSource):
        self.store = store
        self.jobs: dict[str, Job] = {}
        self.job_json: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, Task] = {}
        self.task_json: dict[str, dict[str, Any]] = {}
        self.tasks_of: dict[str, set[str]] = {}
        self.job_order = SortedIndex()
        self.task_order = SortedIndex()
        self.seq = 0
        self._demand = 0
        self.loaded = False
        self.listeners: list[Callable[[Event], None]] = []
        self._lock: asyncio.Lock | None = None
        self._started = 0  # refreshes begun
        self._finished = 0  # the number of the last refresh that completed
        #: Jobs this process created that the view has not reached yet, by feed sequence
        #: number (`take_created`).
        self._early: dict[int, Job] = {}

    # ---- reading the feed -----------------------------------------------------------------
    async def refresh(self) -> None:
        """Catch up with the store's change feed: when this returns, the view has every
        change written before the call.

        One refresh runs at a time, and callers share them: a caller needs a refresh that
        began after it arrived, so everyone who queued behind a running refresh is served
        by the single next one. Without that, N concurrent requests would read the feed N
        times in a row, each waiting for all the others (a convoy that made every request
        as slow as the busiest caller's burst)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        wanted = self._started + 1
        async with self._lock:
            if self._finished >= wanted:
                return  # a refresh that began after this call has completed
            self._started += 1
            number = self._started
            while True:
                # the fetch looks creates up in `_early` itself, so that one made while it
                # runs is found too (only looked up there; inserts happen on the loop)
                loaded = await run_in_threadpool(self._fetch, self.seq, self.loaded, self._early)
                self._apply(loaded)
                for passed in [s for s in self._early if s <= self.seq]:
                    del self._early[passed]
                if loaded.full or len(loaded.seqs) + len(loaded.removed) < BATCH:
                    break
            self._take_early()
            self._finished = number

    def take_created(self, created: Created) -> None:
        """A job this process has just created, taken as it is (no read back, no parse).

        It is applied at once when its change is the next one of the feed and no refresh
        is under way. Otherwise it waits in `_early`: a refresh that reads its change uses
        it instead of reading the job back, and once the view has caught up to it, it is
        applied without waiting for the feed. (Dropping it instead made one create that
        arrived during a refresh send every later create of a busy writer through the
        store again: each refresh ended a few creates behind, and the view never caught
        up.) Either way watchers see each job once, in feed order. Runs on the event loop.
        """
        if not self.loaded or created.seq <= self.seq:
            return  # not loaded yet, already read from the feed, or not numbered (seq 0)
        if len(self._early) < EARLY_LIMIT:
            self._early[created.seq] = created.job
        if self._lock is None or not self._lock.locked():
            self._take_early()

    def _take_early(self) -> None:
        """Apply the waiting creates that follow the view's position, in order."""
        while (job := self._early.pop(self.seq + 1, None)) is not None:
            seq = self.seq + 1
            self._apply(_Loaded(False, seq, [job], [], [], {("job", job.id): seq}))

    def _fetch(self, seq: int, loaded: bool, early: dict[int, Job]) -> _Loaded:
        store = self.store
        batch = store.changes_since(seq, BATCH) if loaded else None
        if batch is None or (batch.first_seq > seq + 1 and seq < batch.last_seq):
            if loaded:
                log.warning("change feed moved past seq %d; reloading the view", seq)
            head = store.last_change_seq()
            state = store.load_active()
            attrs: dict[str, dict[str, str]] = {}
            for job_id in {t.jobId for t in state.tasks}:
                attrs.update(store.list_task_attributes(job_id))
            tasks = [t.with_attributes(attrs.get(t.id, {})) for t in state.tasks]
            return _Loaded(True, head, state.jobs, tasks, [], {})
        last: dict[tuple[str, str], Change] = {}
        for change in batch.changes:
            last[(change.kind, change.entity_id)] = change
        jobs, tasks, removed, seqs = [], [], [], {}
        finals: dict[tuple[str, str], dict[str, Any]] = {}
        for (kind, ident), change in last.items():
            if change.op == "archive":
                removed.append((kind, ident, change.seq))
                final = store.get_job(ident) if kind == "job" else store.get_task(ident)
                if final is not None:
                    finals[(kind, ident)] = final.api_json()
                continue
            seqs[(kind, ident)] = change.seq
            if kind == "job":
                job = early.get(change.seq)
                if job is None or job.id != ident:
                    job = store.get_job(ident)
                if job is not None:
                    jobs.append(job)
            else:
                task = store.get_task(ident)
                if task is not None:
                    tasks.append(task.with_attributes(store.get_task_attributes(ident)))
        new_seq = batch.changes[-1].seq if batch.changes else max(seq, 0)
        return _Loaded(False, new_seq, jobs, tasks, removed, seqs, finals)

    def _apply(self, loaded: _Loaded) -> None:
        """Runs on the event loop, without awaiting: watchers see each change once, in
        feed order, and a snapshot taken between two applies is consistent."""
        if loaded.full:
            self.jobs.clear()
            self.job_json.clear()
            self.tasks.clear()
            self.task_json.clear()
            self.tasks_of.clear()
            self.job_order = SortedIndex()
            self.task_order = SortedIndex()
            self._demand = 0
            self.loaded = True
        events: list[Event] = []
        for job in loaded.jobs:
            self._put_job(job)
            events.append(self._event("job", "put", job.id, loaded.seqs.get(("job", job.id))))
        for task in loaded.tasks:
            if task.jobId not in self.jobs:
                continue  # a late task write of a job already archived
            self._put_task(task)
            events.append(self._event("task", "put", task.id, loaded.seqs.get(("task", task.id))))
        for kind, ident, seq in loaded.removed:
            event = self._remove(kind, ident, seq)
            if event is not None:
                event.body = loaded.finals.get((kind, ident), event.body)
                events.append(event)
        self.seq = max(self.seq, loaded.seq) if not loaded.full else loaded.seq
        if loaded.full:
            return
        events.sort(key=lambda e: e.seq)
        for event in events:
            for listener in self.listeners:
                listener(event)

    def _event(self, kind: str, op: str, ident: str, seq: int | None) -> Event:
        if kind == "job":
            job = self.jobs[ident]
            return Event(seq or 0, kind, op, ident, self.job_json[ident], job=job)
        task = self.tasks[ident]
        return Event(seq or 0, kind, op, task.jobId, self.task_json[ident], task=task)

    # ---- keeping the maps ----------------------------------------------------------------
    def _put_job(self, job: Job) -> None:
        old = self.jobs.get(job.id)
        if old is not None:
            self.job_order.remove(job_key(old))
            self._demand -= old.jobDescriptor.task_demand
        self._demand += job.jobDescriptor.task_demand
        self.jobs[job.id] = job
        self.job_json[job.id] = job.api_json()
        self.job_order.add(job_key(job))

    def _put_task(self, task: Task) -> None:
        old = self.tasks.get(task.id)
        if old is not None:
            self.task_order.remove(task_key(old))
        self.tasks[task.id] = task
        self.task_json[task.id] = task.api_json()
        self.task_order.add(task_key(task))
        self.tasks_of.setdefault(task.jobId, set()).add(task.id)

    def _remove(self, kind: str, ident: str, seq: int) -> Event | None:
        if kind == "job":
            job = self.jobs.pop(ident, None)
            if job is None:
                return None
            self.job_order.remove(job_key(job))
            self._demand -= job.jobDescriptor.task_demand
            body = self.job_json.pop(ident)
            for task_id in list(self.tasks_of.pop(ident, ())):
                self._drop_task(task_id)
            return Event(seq, "job", "archive", ident, body, job=job)
        task = self._drop_task(ident)
        if task is None:
            return None
        return Event(seq, "task", "archive", task[0].jobId, task[1], task=task[0])

    def _drop_task(self, task_id: str) -> tuple[Task, dict[str, Any]] | None:
        task = self.tasks.pop(task_id, None)
        if task is None:
            return None
        self.task_order.remove(task_key(task))
        body = self.task_json.pop(task_id)
        ids = self.tasks_of.get(task.jobId)
        if ids is not None:
            ids.discard(task_id)
        return task, body

    # ---- numbers the admission checks use -----------------------------------------------
    def task_demand(self) -> int:
        """Tasks that active jobs want: batch size or service desired, summed (kept as
        jobs come, change and go, so an admission check costs nothing)."""
        return self._demand
