"""`GET /api/v3/jobs/observe`: job and task changes as Server-Sent Events.

One producer (the view's refresh, fed by the store's change feed) fans each event out to
every watcher's bounded queue; no watcher ever reads the store. A watcher that falls more
than `observe_queue_size` events behind is dropped with a `dropped` event rather than
buffered without bound, so many or slow watchers cannot slow the API down.

The stream: every matching active job and task (`event: job` / `event: task`), then
`event: SnapshotEnd` (its id is where the snapshot stands), then each change with its
change-feed sequence number as `id`, and `: keep-alive` comments while idle. A client that
reconnects with `Last-Event-ID` gets the events it missed while the server still holds
them (the last `observe_history`), otherwise a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from titus.api.deps import view_of
from titus.api.query import JOB_FILTERS, TASK_FILTERS, Criteria
from titus.api.schemas import ERROR_RESPONSES, query_parameters
from titus.api.view import ActiveView, Event

router = APIRouter(prefix="/api/v3", tags=["jobs"], responses=ERROR_RESPONSES)

OBSERVE_FILTERS = (TASK_FILTERS - {"taskIds"}) | JOB_FILTERS


@dataclass(eq=False)
class Watcher:
    criteria: Criteria
    queue: asyncio.Queue[Event | None]
    dropped: bool = False

    def offer(self, event: Event) -> None:
        if self.dropped or not matches(self.criteria, event):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)


def matches(criteria: Criteria, event: Event) -> bool:
    if event.job is not None:
        return criteria.job_matches(event.job)
    return event.task is not None and criteria.task_matches(event.task)


@dataclass
class Hub:
    """Fan-out of the view's events to watchers, with a bounded history for resumes."""

    view: ActiveView
    queue_size: int
    history_size: int
    watchers: set[Watcher] = field(default_factory=set)
    history: deque[Event] = field(default_factory=deque)
    floor: int = -1  # events after this seq are all in history (or none happened)

    def __post_init__(self) -> None:
        self.view.listeners.append(self.publish)

    def publish(self, event: Event) -> None:
        if self.floor < 0:
            self.floor = max(0, event.seq - 1)
        self.history.append(event)
        while len(self.history) > self.history_size:
            self.floor = self.history.popleft().seq
        for watcher in list(self.watchers):
            watcher.offer(event)

    def subscribe(self, criteria: Criteria, last_id: int | None) -> tuple[Watcher, list[str]]:
        """Register a watcher and return what to send first: missed events when resuming,
        else the snapshot and SnapshotEnd. No await in here: nothing can slip between the
        first part and the live events."""
        watcher = Watcher(criteria, asyncio.Queue(self.queue_size))
        self.watchers.add(watcher)
        floor = self.floor if self.floor >= 0 else self.view.seq
        if last_id is not None and floor <= last_id <= self.view.seq:
            missed = [e for e in self.history if e.seq > last_id and matches(criteria, e)]
            return watcher, [sse(e.kind, payload(e), e.seq) for e in missed]
        first: list[str] = []
        view = self.view
        for job_id, job in view.jobs.items():
            if not criteria.job_matches(job):
                continue
            first.append(sse("job", {"op": "put", "job": view.job_json[job_id]}))
            for task_id in view.tasks_of.get(job_id, ()):
                if criteria.task_matches(view.tasks[task_id]):
                    first.append(sse("task", {"op": "put", "task": view.task_json[task_id]}))
        first.append(sse("SnapshotEnd", {"seq": view.seq}, view.seq))
        return watcher, first

    def unsubscribe(self, watcher: Watcher) -> None:
        self.watchers.discard(watcher)


def payload(event: Event) -> dict[str, Any]:
    return {"op": event.op, event.kind: event.body}


def sse(event: str, data: dict[str, Any], ident: int | None = None) -> str:
    head = f"id: {ident}\n" if ident is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


OBSERVE_DOC = {
    "parameters": query_parameters(OBSERVE_FILTERS),
    "responses": {
        "200": {
            "description": "Server-Sent Events: snapshot, SnapshotEnd, then changes.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
}


@router.get("/jobs/observe", response_class=StreamingResponse, openapi_extra=OBSERVE_DOC)
async def observe(request: Request) -> StreamingResponse:
    """Watch active jobs and tasks: a snapshot, `SnapshotEnd`, then live changes."""
    criteria = Criteria.parse(dict(request.query_params), OBSERVE_FILTERS)
    raw_last = request.headers.get("last-event-id", "").strip()
    last_id = int(raw_last) if raw_last.isdigit() else None
    await view_of(request).refresh()
    hub: Hub = request.app.state.hub
    keepalive = request.app.state.settings.observe_keepalive_sec
    watcher, first = hub.subscribe(criteria, last_id)

    async def stream() -> AsyncIterator[str]:
        try:
            for item in first:
                yield item
            first.clear()
            while True:
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), keepalive)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if event is None:
                    yield sse(
                        "dropped",
                        {"reason": "too slow: over the queue bound; reconnect to resume"},
                    )
                    return
                yield sse(event.kind, payload(event), event.seq)
        finally:
            hub.unsubscribe(watcher)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
