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
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from titus.api.auth import OPEN, Principal
from titus.api.grpc.convert import job_message, task_message
from titus.api.grpc.errors import Refusal
from titus.api.grpc.gate import Refused
from titus.api.grpc.gen import titus_base_pb2 as base
from titus.api.grpc.gen import titus_job_api_pb2 as pb
from titus.api.observe import Hub, Watcher
from titus.api.policy import job_doc
from titus.api.query import Criteria
from titus.api.view import Event
from titus.model.states import JobState

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


@dataclass
class KeepAlives:
    """Keep-alive requests a client sent, waiting to be answered.

    Each is answered once every change written before it arrived has been sent: `observe`
    takes the waiting requests, catches the view up with the store, then sends the
    watcher's pending changes and only then the answers.
    """

    waiting: list[base.KeepAliveRequest] = field(default_factory=list)
    asked: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, request: base.KeepAliveRequest) -> None:
        self.waiting.append(request)
        self.asked.set()

    def take(self) -> list[base.KeepAliveRequest]:
        out, self.waiting = self.waiting, []
        self.asked.clear()
        return out


def keep_alive_note(request: base.KeepAliveRequest) -> Note:
    now = _now_ms()
    answer = base.KeepAliveResponse(request=request, timestamp=now)
    return Note(keepAliveResponse=answer, timestamp=now)


async def _wake(watcher: Watcher, asks: KeepAlives | None) -> None:
    """Wait until the watcher has a change or (with `asks`) a keep-alive is waiting."""
    if asks is None:
        await watcher.ready.wait()
        return
    waits = [asyncio.ensure_future(watcher.ready.wait()), asyncio.ensure_future(asks.asked.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


def _subscribe(
    hub: Hub,
    criteria: Criteria,
    job_fields: list[str],
    task_fields: list[str],
    who: Principal,
    key: str,
) -> tuple[Watcher, Iterator[Note]]:
    """Register a watcher and take the snapshot (no await in here); its notifications are
    made one by one as the client reads them, then the marker."""
    watcher = hub.watch(criteria, who, key)
    entries = hub.snapshot(watcher)

    def notes() -> Iterator[Note]:
        for kind, body in entries:
            if kind == "job":
                yield _job_note(who, body, job_fields, reuse=True)
            else:
                yield task_note(body, task_fields, reuse=True)
        yield Note(snapshotEnd=Note.SnapshotEnd(), timestamp=_now_ms())

    return watcher, notes()


def _job_note(
    who: Principal,
    body: dict[str, Any],
    fields: list[str],
    archived: bool = False,
    reuse: bool = False,
) -> Note:
    """A job notification as `who` may read it (env values hidden from non-owners)."""
    shown = job_doc(who, body)
    return job_note(shown, fields, archived, reuse=reuse and shown is body)


def _note(event: Event, job_fields: list[str], task_fields: list[str], who: Principal) -> Note:
    """An event as a notification; an archive carries the record's final state (the view
    reads it from the store)."""
    archived = event.op == "archive"
    if event.kind == "job":
        return _job_note(who, event.body, job_fields, archived, reuse=not archived)
    return task_note(event.body, task_fields, archived, reuse=not archived)


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
    who: Principal = OPEN,
    key: str = "",
    asks: KeepAlives | None = None,
) -> AsyncIterator[Note]:
    """The snapshot, SnapshotEnd, then changes; with `until_job_ends`, the stream ends
    after that job's Finished (or archive) notification; with `asks`, each keep-alive is
    answered after the changes queued before it."""
    jf, tf = job_fields or [], task_fields or []
    await hub.view.refresh()
    watcher, first = _subscribe(hub, criteria, jf, tf, who, key)
    try:
        for note in first:
            yield note
        while True:
            if not watcher.pending and not (asks and asks.waiting):
                await _wake(watcher, asks)
                # let a burst gather into one wake-up, as the REST stream does
                await asyncio.sleep(hub.linger_sec)
            answered = asks.take() if asks else []
            if answered:  # so the answer follows every change written before the ask
                await hub.view.refresh()
            for event in watcher.take():
                if event is None:
                    raise Refused(
                        Refusal(
                            grpc.StatusCode.ABORTED,
                            "too slow: over the observe queue bound; observe again",
                        )
                    )
                yield _note(event, jf, tf, who)
                if until_job_ends is not None and _ends(event, until_job_ends):
                    return
            for request in answered:
                yield keep_alive_note(request)
    finally:
        hub.unsubscribe(watcher)
