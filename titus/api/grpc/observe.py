"""ObserveJobs and ObserveJob: the REST observe stream's source, as notifications.

A gRPC watcher is a watcher of the same hub as the Server-Sent Events clients: it is
registered and handed the snapshot in one step with no await between (so no change can
fall between the snapshot and the live events), it gets each change once from the one
producer, and it is bounded the same way: a watcher more than `observe_queue_size`
events behind is dropped (the call ends with ABORTED, the client reconnects for a fresh
snapshot) instead of holding memory without limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc

from titus.api.grpc.convert import job_message, task_message
from titus.api.grpc.errors import Refusal
from titus.api.grpc.gate import Refused
from titus.api.grpc.gen import titus_job_api_pb2 as pb
from titus.api.observe import Hub, Watcher
from titus.api.query import Criteria
from titus.api.view import Event
from titus.model.states import JobState

Note = pb.JobChangeNotification


def _now_ms() -> int:
    return int(time.time() * 1000)


def job_note(body: dict[str, object], fields: list[str], archived: bool = False) -> Note:
    return Note(
        jobUpdate=Note.JobUpdate(job=job_message(body, fields), archived=archived),
        timestamp=_now_ms(),
    )


def task_note(body: dict[str, object], fields: list[str], archived: bool = False) -> Note:
    return Note(
        taskUpdate=Note.TaskUpdate(task=task_message(body, fields), archived=archived),
        timestamp=_now_ms(),
    )


def _subscribe(
    hub: Hub, criteria: Criteria, job_fields: list[str], task_fields: list[str]
) -> tuple[Watcher, list[Note]]:
    """Register a watcher and make the snapshot, then the marker (no await in here)."""
    watcher = Watcher(criteria, hub.queue_size)
    hub.watchers.add(watcher)
    view = hub.view
    first: list[Note] = []
    for job_id, job in view.jobs.items():
        if not criteria.job_matches(job):
            continue
        first.append(job_note(view.job_json[job_id], job_fields))
        for task_id in view.tasks_of.get(job_id, ()):
            if criteria.task_matches(view.tasks[task_id]):
                first.append(task_note(view.task_json[task_id], task_fields))
    first.append(Note(snapshotEnd=Note.SnapshotEnd(), timestamp=_now_ms()))
    return watcher, first


def _note(event: Event, job_fields: list[str], task_fields: list[str]) -> Note:
    archived = event.op == "archive"
    if event.kind == "job":
        return job_note(event.body, job_fields, archived)
    return task_note(event.body, task_fields, archived)


def _ends(event: Event, job_id: str) -> bool:
    """Whether this event ends a single job's stream: the job finished or left."""
    if event.kind != "job" or event.job_id != job_id:
        return False
    return event.op == "archive" or (
        event.job is not None and event.job.status.state == JobState.FINISHED
    )


async def observe(
    hub: Hub,
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
                yield _note(event, jf, tf)
                if until_job_ends is not None and _ends(event, until_job_ends):
                    return
    finally:
        hub.unsubscribe(watcher)
