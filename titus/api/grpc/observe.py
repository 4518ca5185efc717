"""ObserveJobs and ObserveJob: the REST observe stream's source, as notifications.

A gRPC watcher is a watcher of the same hub as the Server-Sent Events clients: it is
registered and handed the snapshot in one step with no await between (so no change can
fall between the snapshot and the live events), it gets each change once from the one
producer, and it is bounded the same way: a watcher more than `observe_queue_size`
events behind is dropped (the call ends with ABORTED, the client reconnects for a fresh
snapshot) instead of holding memory without limit.

Two things differ from the Server-Sent Events stream, because Titus's clients rely on
them: job criteria (application, job ids, ...) also select the tasks of matching jobs,
and a job or task that left the active set is sent as it finally was (Finished, with
its reason), read once from the store however many watchers send it, since the change
feed names an archived entity without its last state.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from titus.api.grpc.convert import job_message, task_message
from titus.api.grpc.errors import Refusal
from titus.api.grpc.gate import Refused
from titus.api.grpc.gen import titus_job_api_pb2 as pb
from titus.api.observe import Hub, Watcher
from titus.api.query import Criteria
from titus.api.view import ActiveView, Event
from titus.model.states import JobState
from titus.store.roles import Jobs

Note = pb.JobChangeNotification


def _now_ms() -> int:
    return int(time.time() * 1000)


def job_note(
    body: dict[str, Any], fields: list[str], archived: bool = False, reuse: bool = False
) -> Note:
    """A job notification; `reuse` when `body` is the view's document (see convert)."""
    job = job_message(body, fields, reuse=reuse)
    return Note(jobUpdate=Note.JobUpdate(job=job, archived=archived), timestamp=_now_ms())


def task_note(
    body: dict[str, Any], fields: list[str], archived: bool = False, reuse: bool = False
) -> Note:
    task = task_message(body, fields, reuse=reuse)
    return Note(taskUpdate=Note.TaskUpdate(task=task, archived=archived), timestamp=_now_ms())


@dataclass(eq=False)
class JobAwareWatcher(Watcher):
    """A watcher whose job criteria also select task events: a task passes when its job
    matched (now, or when the job was last seen, so the tasks of a job that just left
    the active set still pass)."""

    view: ActiveView | None = None
    jobs_matched: set[str] = field(default_factory=set)

    def offer(self, event: Event) -> None:
        criteria = self.criteria
        if criteria.job_checks:
            if event.job is not None:
                if criteria.job_matches(event.job):
                    self.jobs_matched.add(event.job_id)
                else:
                    self.jobs_matched.discard(event.job_id)
            elif event.task is not None and event.task.jobId not in self.jobs_matched:
                job = self.view.jobs.get(event.task.jobId) if self.view else None
                if job is None or not criteria.job_matches(job):
                    return
        super().offer(event)


class FinalRecords:
    """The last state of archived jobs and tasks, read from the store once per event
    (the first watcher to need it reads it; the others wait for that read)."""

    def __init__(self, store: Jobs, size: int = 1000):
        self.store = store
        self.size = size
        self._reads: OrderedDict[tuple[str, str, int], asyncio.Future[Any]] = OrderedDict()

    async def body(self, event: Event) -> dict[str, Any]:
        key = (event.kind, event.job_id if event.kind == "job" else event.body["id"], event.seq)
        read = self._reads.get(key)
        if read is None:
            read = asyncio.ensure_future(asyncio.to_thread(self._read, key[0], key[1]))
            self._reads[key] = read
            while len(self._reads) > self.size:
                self._reads.popitem(last=False)
        found = await asyncio.shield(read)
        return found if found is not None else event.body

    def _read(self, kind: str, ident: str) -> dict[str, Any] | None:
        if kind == "job":
            job = self.store.get_job(ident)
            return job.api_json() if job is not None else None
        task = self.store.get_task(ident)
        return task.api_json() if task is not None else None


def _subscribe(
    hub: Hub, criteria: Criteria, job_fields: list[str], task_fields: list[str]
) -> tuple[Watcher, list[Note]]:
    """Register a watcher and make the snapshot, then the marker (no await in here)."""
    watcher = JobAwareWatcher(criteria, hub.queue_size, view=hub.view)
    hub.watchers.add(watcher)
    view = hub.view
    first: list[Note] = []
    for job_id, job in view.jobs.items():
        if not criteria.job_matches(job):
            continue
        watcher.jobs_matched.add(job_id)
        first.append(job_note(view.job_json[job_id], job_fields, reuse=True))
        for task_id in view.tasks_of.get(job_id, ()):
            if criteria.task_matches(view.tasks[task_id]):
                first.append(task_note(view.task_json[task_id], task_fields, reuse=True))
    first.append(Note(snapshotEnd=Note.SnapshotEnd(), timestamp=_now_ms()))
    return watcher, first


async def _note(
    event: Event, finals: FinalRecords, job_fields: list[str], task_fields: list[str]
) -> Note:
    archived = event.op == "archive"
    body = await finals.body(event) if archived else event.body
    if event.kind == "job":
        return job_note(body, job_fields, archived, reuse=not archived)
    return task_note(body, task_fields, archived, reuse=not archived)


def _ends(event: Event, job_id: str) -> bool:
    """Whether this event ends a single job's stream: the job finished or left."""
    if event.kind != "job" or event.job_id != job_id:
        return False
    return event.op == "archive" or (
        event.job is not None and event.job.status.state == JobState.FINISHED
    )


async def observe(
    hub: Hub,
    finals: FinalRecords,
    criteria: Criteria,
    job_fields: list[str] | None = None,
    task_fields: list[str] | None = None,
    until_job_ends: str | None = None,
) -> AsyncIterator[Note]:
    """The snapshot, SnapshotEnd, then changes; with `until_job_ends`, the stream ends
    after that job's Finished (or archive) notification."""
    jf, tf = job_fields or [], task_fields or []
    await hub.view.refresh()
    watcher, first = _subscribe(hub, criteria, jf, tf)
    try:
        for note in first:
            yield note
        first.clear()
        while True:
            if not watcher.pending:
                await watcher.ready.wait()
                # let a burst gather into one wake-up, as the REST stream does
                await asyncio.sleep(hub.linger_sec)
            for event in watcher.take():
                if event is None:
                    raise Refused(
                        Refusal(
                            grpc.StatusCode.ABORTED,
                            "too slow: over the observe queue bound; observe again",
                        )
                    )
                yield await _note(event, finals, jf, tf)
                if until_job_ends is not None and _ends(event, until_job_ends):
                    return
    finally:
        hub.unsubscribe(watcher)
